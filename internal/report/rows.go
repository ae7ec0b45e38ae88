package report

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/audit"
	"github.com/rotatorhq/rotator/internal/runbook"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/view"
	"github.com/rotatorhq/rotator/rotation"
)

// Meta heads a report.
type Meta struct {
	Title       string    `json:"title"`
	GeneratedAt time.Time `json:"generated_at"`
	Since       time.Time `json:"since"`
	Until       time.Time `json:"until"`
	// Selector is the label selector (k=v,...), "" for all credentials.
	Selector string `json:"selector"`
	Database string `json:"database"`
}

// Link is a runbook section: the reference as a credential or run names it
// and the URL reports link to.
type Link struct {
	Ref    string `json:"ref"`
	Path   string `json:"path"`
	Anchor string `json:"anchor"`
	URL    string `json:"url"`
}

// Flags of a credential.
const (
	FlagOverdue        = "overdue"
	FlagExpiring       = "expiring"
	FlagFailing        = "failing"
	FlagNeedsAttention = "needs_attention"
	FlagOverScoped     = "over_scoped"
)

// Version is a credential's current version: id and fingerprint, never
// the value.
type Version struct {
	ID          string `json:"id"`
	Fingerprint string `json:"fingerprint"`
}

// CredentialRow is one credential's compliance with its policy at the
// report's time.
type CredentialRow struct {
	ID           string            `json:"id"`
	Consumer     string            `json:"consumer"`
	Provider     string            `json:"provider"`
	Owner        string            `json:"owner"`
	Labels       map[string]string `json:"labels"`
	Scope        []string          `json:"scope"`
	GrantedScope []string          `json:"granted_scope"`
	// GrantedScopeReported is false when the resource did not report the
	// current value's granted scope (then GrantedScope is empty, unknown).
	GrantedScopeReported bool `json:"granted_scope_reported"`
	// ExtraScope is what was granted but not declared.
	ExtraScope     []string   `json:"extra_scope"`
	Status         string     `json:"status"`
	Flags          []string   `json:"flags"`
	AgeSeconds     *int64     `json:"age_seconds"`
	MaxAgeSeconds  int64      `json:"max_age_seconds"`
	AgeFraction    *float64   `json:"age_fraction"`
	LastRotatedAt  *time.Time `json:"last_rotated_at"`
	NextRotationAt *time.Time `json:"next_rotation_at"`
	ExpiresAt      *time.Time `json:"expires_at"`
	CurrentVersion *Version   `json:"current_version"`
	Runbook        Link       `json:"runbook"`
	// RunbookProblem says why the runbook link does not resolve, if so.
	RunbookProblem *string `json:"runbook_problem"`
}

// Run outcomes.
const (
	OutcomeSucceeded  = "succeeded"
	OutcomeRolledBack = "rolled_back"
	OutcomeFailed     = "failed"
	OutcomeInProgress = "in_progress"
)

// RunRow is one run of the period.
type RunRow struct {
	ID              string     `json:"id"`
	Credential      string     `json:"credential"`
	Trigger         string     `json:"trigger"`
	Actor           string     `json:"actor"`
	Reason          string     `json:"reason"`
	State           string     `json:"state"`
	Outcome         string     `json:"outcome"`
	Attempt         int        `json:"attempt"`
	CreatedAt       time.Time  `json:"created_at"`
	StartedAt       *time.Time `json:"started_at"`
	FinishedAt      *time.Time `json:"finished_at"`
	DurationSeconds *float64   `json:"duration_seconds"`
	FailedStep      *string    `json:"failed_step"`
	// SkippedSteps are the steps recorded skipped (StepSkipped): revoke
	// steps of a provider that cannot revoke, whose values stayed valid
	// until they expired, and stage steps of targets without a pending slot.
	SkippedSteps []string `json:"skipped_steps"`
	Error        *string  `json:"error"`
	OldVersion   *string  `json:"old_version"`
	NewVersion   *string  `json:"new_version"`
	Runbook      Link     `json:"runbook"`
	// RunbookDigest is the digest of the runbook text the run followed;
	// CurrentRunbookDigest that of the file today (null if unreadable).
	RunbookDigest        string  `json:"runbook_digest"`
	CurrentRunbookDigest *string `json:"current_runbook_digest"`
	// RunbookChanged is true when the runbook changed since the run
	// followed it.
	RunbookChanged bool `json:"runbook_changed"`
}

// Violation is a breach of policy: derived from a credential's state at the
// report's time, or recorded as a policy.* audit event in the period.
type Violation struct {
	Credential string     `json:"credential"`
	Kind       string     `json:"kind"`
	Detail     string     `json:"detail"`
	OccurredAt *time.Time `json:"occurred_at"`
	EventID    *int64     `json:"event_id"`
	Runbook    Link       `json:"runbook"`
}

// AuditStatus is the audit chain's integrity (audit.Verify over the whole
// chain) plus the number of policy events of the period.
type AuditStatus struct {
	audit.Report
	PolicyEvents int `json:"policy_events"`
}

// AgeBuckets are the upper bounds of the age histogram, as fractions of max
// age; the last bucket holds everything past max age.
var AgeBuckets = []float64{0.25, 0.5, 0.75, 0.9, 1}

// Bucket counts runs created in one interval of the period.
type Bucket struct {
	Start      time.Time `json:"start"`
	Succeeded  int       `json:"succeeded"`
	RolledBack int       `json:"rolled_back"`
	Failed     int       `json:"failed"`
	InProgress int       `json:"in_progress"`
	Emergency  int       `json:"emergency"`
	// SuccessRate is the share of the bucket's finished runs that
	// succeeded (null if none finished).
	SuccessRate *float64 `json:"success_rate"`
}

// Total is the number of runs in the bucket.
func (b Bucket) Total() int { return b.Succeeded + b.RolledBack + b.Failed + b.InProgress }

// rate is the share of finished runs that succeeded (nil if none
// finished).
func (b Bucket) rate() *float64 {
	done := b.Succeeded + b.RolledBack + b.Failed
	if done == 0 {
		return nil
	}
	r := float64(b.Succeeded) / float64(done)
	return &r
}

// Summary aggregates the report; it is computed before any row is written.
type Summary struct {
	Credentials int            `json:"credentials"`
	ByStatus    map[string]int `json:"by_status"`
	ByFlag      map[string]int `json:"by_flag"`
	// AgeHistogram counts credentials by age fraction: one count per
	// AgeBuckets bound, then one past max age; NoAge counts those with no
	// current version or no max age.
	AgeHistogram []int `json:"age_histogram"`
	NoAge        int   `json:"no_age"`

	Runs        int      `json:"runs"`
	Succeeded   int      `json:"succeeded"`
	RolledBack  int      `json:"rolled_back"`
	Failed      int      `json:"failed"`
	InProgress  int      `json:"in_progress"`
	Emergencies int      `json:"emergencies"`
	SuccessRate *float64 `json:"success_rate"`
	// BucketSeconds is the width of each timeline bucket.
	BucketSeconds int64    `json:"bucket_seconds"`
	Timeline      []Bucket `json:"timeline"`

	Violations   int         `json:"violations"`
	PolicyEvents int         `json:"-"`
	Audit        AuditStatus `json:"-"`
}

func newSummary(since, until time.Time) Summary {
	span := until.Sub(since)
	width := 7 * 24 * time.Hour
	switch {
	case span <= 48*time.Hour:
		width = time.Hour
	case span <= 120*24*time.Hour:
		width = 24 * time.Hour
	}
	n := int(math.Ceil(float64(span) / float64(width)))
	s := Summary{
		ByStatus: map[string]int{}, ByFlag: map[string]int{}, AgeHistogram: make([]int, len(AgeBuckets)+1),
		BucketSeconds: int64(width / time.Second), Timeline: make([]Bucket, n),
	}
	for i := range s.Timeline {
		s.Timeline[i].Start = since.Add(time.Duration(i) * width)
	}
	return s
}

func (s *Summary) addCredential(row CredentialRow) {
	s.Credentials++
	s.ByStatus[row.Status]++
	for _, f := range row.Flags {
		s.ByFlag[f]++
	}
	if row.AgeFraction == nil {
		s.NoAge++
		return
	}
	s.AgeHistogram[ageBucket(*row.AgeFraction)]++
}

// ageBucket returns the histogram bucket of an age fraction.
func ageBucket(frac float64) int {
	for i, b := range AgeBuckets {
		if frac <= b {
			return i
		}
	}
	return len(AgeBuckets)
}

func (s *Summary) addRun(r store.Run) {
	s.Runs++
	b := &Bucket{}
	if len(s.Timeline) > 0 {
		i := int(r.CreatedAt.Sub(s.Timeline[0].Start) / (time.Duration(s.BucketSeconds) * time.Second))
		b = &s.Timeline[min(max(i, 0), len(s.Timeline)-1)]
	}
	switch outcome(r.State) {
	case OutcomeSucceeded:
		s.Succeeded++
		b.Succeeded++
	case OutcomeRolledBack:
		s.RolledBack++
		b.RolledBack++
	case OutcomeFailed:
		s.Failed++
		b.Failed++
	default:
		s.InProgress++
		b.InProgress++
	}
	if r.Trigger == store.TriggerEmergency {
		s.Emergencies++
		b.Emergency++
	}
}

func (s *Summary) finish() {
	all := Bucket{Succeeded: s.Succeeded, RolledBack: s.RolledBack, Failed: s.Failed}
	s.SuccessRate = all.rate()
	for i := range s.Timeline {
		s.Timeline[i].SuccessRate = s.Timeline[i].rate()
	}
}

func outcome(state string) string {
	switch rotation.State(state) {
	case rotation.StateSucceeded:
		return OutcomeSucceeded
	case rotation.StateRolledBack:
		return OutcomeRolledBack
	case rotation.StateFailed:
		return OutcomeFailed
	case rotation.StatePlanned, rotation.StateRevokingCurrent, rotation.StateMinting, rotation.StateMinted,
		rotation.StateActivating, rotation.StateActivated, rotation.StateVerifying, rotation.StateVerified,
		rotation.StateCuttingOver, rotation.StateCutOver, rotation.StateRetiringPrevious, rotation.StateRollingBack:
		return OutcomeInProgress
	}
	return OutcomeInProgress
}

// credentialRow renders a credential as seen at the report's time.
func (g *generator) credentialRow(c store.Credential) CredentialRow {
	now := g.opts.Now
	v := view.NewCredential(c, now)
	path, anchor := runbook.Split(c.Runbook)
	row := CredentialRow{
		ID: v.ID, Consumer: v.Consumer, Provider: v.Provider, Owner: v.Owner, Labels: v.Labels,
		Scope: v.Scope, GrantedScope: v.GrantedScope, GrantedScopeReported: v.GrantedScopeReported, ExtraScope: []string{}, Status: v.Status, Flags: []string{},
		AgeSeconds: v.AgeSeconds, MaxAgeSeconds: v.MaxAgeSeconds, LastRotatedAt: v.LastRotatedAt,
		NextRotationAt: v.NextRotationAt, ExpiresAt: v.ExpiresAt, Runbook: g.link(path, anchor),
	}
	if cv := v.CurrentVersion; cv != nil {
		row.CurrentVersion = &Version{ID: cv.ID, Fingerprint: cv.Fingerprint}
	}
	if c.Runbook == "" {
		p := "no runbook linked"
		row.RunbookProblem = &p
	} else if err := g.anchorOK(c.Runbook); err != nil {
		p := err.Error()
		row.RunbookProblem = &p
	}
	// Age as a fraction of the allowed lifetime: max age, or the provider's
	// expiry when that comes first.
	if cur := c.Current; cur != nil && v.AgeSeconds != nil {
		issued := cur.ActivatedAt
		if issued.IsZero() {
			issued = cur.CreatedAt
		}
		var frac float64
		known := false
		if c.Policy.MaxAge > 0 {
			frac, known = now.Sub(issued).Seconds()/c.Policy.MaxAge.Seconds(), true
		}
		if exp := c.State.ExpiresAt; !exp.IsZero() && exp.After(issued) {
			if f := now.Sub(issued).Seconds() / exp.Sub(issued).Seconds(); !known || f > frac {
				frac, known = f, true
			}
		}
		if known {
			frac = math.Round(frac*1000) / 1000
			row.AgeFraction = &frac
		}
	}
	if c.Current != nil && c.Current.ScopeReported() {
		row.ExtraScope = append(row.ExtraScope, store.ExtraScope(c.Current.GrantedScope, c.Scope)...)
	}
	status := store.Status(v.Status)
	overdue := status == store.StatusOverdue || status == store.StatusExpired || (row.AgeFraction != nil && *row.AgeFraction > 1)
	if overdue {
		row.Flags = append(row.Flags, FlagOverdue)
	} else if row.AgeFraction != nil && *row.AgeFraction >= g.opts.ExpiringAt {
		row.Flags = append(row.Flags, FlagExpiring)
	}
	if status == store.StatusFailing || (c.State.FailureCount > 0 && status != store.StatusNeedsAttention) {
		row.Flags = append(row.Flags, FlagFailing)
	}
	if status == store.StatusNeedsAttention {
		row.Flags = append(row.Flags, FlagNeedsAttention)
	}
	if len(row.ExtraScope) > 0 {
		row.Flags = append(row.Flags, FlagOverScoped)
	}
	return row
}

// Kinds of violations derived from a credential's state.
const (
	ViolationMaxAge         = "max_age_exceeded"
	ViolationExpired        = "expired"
	ViolationOverScoped     = "over_scoped"
	ViolationNeedsAttention = "needs_attention"
	ViolationRunbook        = "runbook_unresolved"
)

// credentialViolations derives the policy violations of a credential.
func (g *generator) credentialViolations(row CredentialRow) []Violation {
	var out []Violation
	add := func(kind, detail string) {
		out = append(out, Violation{Credential: row.ID, Kind: kind, Detail: detail, Runbook: row.Runbook})
	}
	if row.Status == string(store.StatusExpired) {
		add(ViolationExpired, fmt.Sprintf("the current value expired at %s", fmtTimePtr(row.ExpiresAt)))
	} else if row.AgeFraction != nil && *row.AgeFraction > 1 {
		add(ViolationMaxAge, fmt.Sprintf("age %s exceeds max age %s", fmtSeconds(row.AgeSeconds), fmtSeconds(&row.MaxAgeSeconds)))
	}
	if len(row.ExtraScope) > 0 {
		add(ViolationOverScoped, fmt.Sprintf("granted %s, which the declared scope [%s] does not include",
			strings.Join(row.ExtraScope, ", "), strings.Join(row.Scope, ", ")))
	}
	if row.Status == string(store.StatusNeedsAttention) {
		add(ViolationNeedsAttention, "rotation failed repeatedly; follow the runbook")
	}
	if row.RunbookProblem != nil {
		add(ViolationRunbook, *row.RunbookProblem)
	}
	return out
}

// policyViolation renders a policy.* audit event.
func policyViolation(ev store.AuditEvent, link func(path, anchor string) Link) Violation {
	t := ev.OccurredAt.UTC()
	id := ev.ID
	detail := ""
	if len(ev.Data) > 0 {
		if c, err := audit.CanonicalJSON(ev.Data); err == nil {
			detail = string(c)
		}
	}
	v := Violation{Credential: ev.CredentialID, Kind: strings.TrimPrefix(ev.Action, "policy."), Detail: detail, OccurredAt: &t, EventID: &id}
	var data struct {
		Runbook json.RawMessage `json:"runbook"`
	}
	if json.Unmarshal(ev.Data, &data) == nil && len(data.Runbook) > 0 {
		var ref string
		if json.Unmarshal(data.Runbook, &ref) == nil {
			v.Runbook = link(runbook.Split(ref))
		}
	}
	return v
}

// runRow renders a run, with its failed step and whether its runbook
// changed since.
func (g *generator) runRow(ctx context.Context, r store.Run) (RunRow, error) {
	v := view.NewRun(r, nil)
	row := RunRow{
		ID: v.ID, Credential: v.Credential, Trigger: v.Trigger, Actor: v.Actor, Reason: v.Reason, State: v.State,
		Outcome: outcome(r.State), Attempt: v.Attempt, CreatedAt: v.CreatedAt, StartedAt: v.StartedAt,
		FinishedAt: v.FinishedAt, DurationSeconds: v.DurationSec, Error: v.Error, OldVersion: v.OldVersion,
		NewVersion: v.NewVersion, Runbook: g.link(r.Runbook.Path, r.Runbook.Anchor), RunbookDigest: r.Runbook.Digest,
		SkippedSteps: nonNilStrings(g.skipped[r.ID]),
	}
	if row.DurationSeconds != nil {
		d := math.Round(*row.DurationSeconds*1000) / 1000
		row.DurationSeconds = &d
	}
	if r.Runbook.Path != "" {
		if cur, err := g.runbookDigest(r.Runbook.Path); err == nil {
			row.CurrentRunbookDigest = &cur
			row.RunbookChanged = r.Runbook.Digest != "" && cur != r.Runbook.Digest
		}
	}
	if row.Outcome == OutcomeRolledBack || row.Outcome == OutcomeFailed {
		steps, err := g.st.ListSteps(ctx, r.ID)
		if err != nil {
			return row, fmt.Errorf("reading the steps of run %s: %w", r.ID, err)
		}
		for _, s := range steps {
			if s.State == string(rotation.StepFailed) {
				name := s.Name
				row.FailedStep = &name
				break
			}
		}
	}
	return row, nil
}

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func fmtSeconds(s *int64) string {
	if s == nil {
		return "-"
	}
	return humanDuration(time.Duration(*s) * time.Second)
}

// humanDuration renders d with its two largest units: 30d, 12d7h, 5h30m,
// 4m10s, 0s.
func humanDuration(d time.Duration) string {
	if d < 0 {
		return "-" + humanDuration(-d)
	}
	units := []struct {
		d    time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	for i, u := range units {
		if d < u.d && i < len(units)-1 {
			continue
		}
		out := fmt.Sprintf("%d%s", d/u.d, u.name)
		if i+1 < len(units) {
			if rest := (d % u.d) / units[i+1].d; rest > 0 {
				out += fmt.Sprintf("%d%s", rest, units[i+1].name)
			}
		}
		return out
	}
	return "0s"
}

func nonNilStrings(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// skippedText lists a run's skipped steps for the md and html reports.
func skippedText(steps []string) string {
	if len(steps) == 0 {
		return ""
	}
	return "skipped: " + strings.Join(steps, ", ")
}
