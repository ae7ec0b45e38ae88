// Package report writes audit reports of rotator's inventory and history
// (DESIGN.md §1, issue "documented runs"): for a period, every credential's
// compliance with its policy (consumer, declared and granted scope, age
// against max age, last and next rotation, status and flags), every run
// (trigger, actor, reason, outcome, duration, failed step), emergency
// rotations with their reasons, policy violations and the audit chain's
// integrity, each row linked to its runbook section.
//
// Reports come in four formats (Markdown, self-contained HTML with inline
// SVG charts, JSON valid against docs/report-schema.json, and CSV) and are
// streamed: credentials are read a page at a time by id and runs a page at
// a time by creation time, and every row is written as soon as it is read,
// so memory stays bounded however large the inventory and history. The
// summary at the top comes from a first, aggregating pass over the same
// pages.
//
// No report carries a secret value: credentials appear with version ids and
// fingerprints, runs with their (already scrubbed) errors.
package report

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rotatorhq/rotator/internal/audit"
	"github.com/rotatorhq/rotator/internal/runbook"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// Format is an output format.
type Format string

// Formats.
const (
	FormatMarkdown Format = "md"
	FormatHTML     Format = "html"
	FormatJSON     Format = "json"
	FormatCSV      Format = "csv"
)

// Formats lists the formats in the order help texts show them.
var Formats = []Format{FormatMarkdown, FormatHTML, FormatJSON, FormatCSV}

// ParseFormat validates a format name.
func ParseFormat(s string) (Format, error) {
	for _, f := range Formats {
		if string(f) == s {
			return f, nil
		}
	}
	return "", fmt.Errorf("unknown report format %q; use md, html, json or csv", s)
}

// DefaultPeriod is the period a report covers when Since is not set.
const DefaultPeriod = 30 * 24 * time.Hour

// Options configure a report.
type Options struct {
	// Format is the output format (default FormatMarkdown).
	Format Format
	// Since (inclusive) and Until (exclusive) bound the period: runs
	// created and policy events that occurred in it. Until defaults to just
	// after Now (a run created at Now is in the period),
	// Since to Until − DefaultPeriod.
	Since, Until time.Time
	// Selector limits the report to credentials carrying every label (and
	// to their runs and events).
	Selector map[string]string
	// Now is the time the report is made at: ages, due times and flags are
	// computed at Now (default time.Now).
	Now time.Time
	// Title heads the report (default "rotator audit report").
	Title string
	// Database names the store in the header ("postgres", "sqlite").
	Database string
	// RunbookDir is where relative runbook paths are resolved to compute
	// their current digest (default: the working directory).
	RunbookDir string
	// RunbookBaseURL prefixes runbook links (for example
	// https://github.com/acme/ops/blob/main/); links are relative when empty.
	RunbookBaseURL string
	// ExpiringAt is the fraction of its max age (or lifetime) after which a
	// credential is flagged expiring (default 0.9).
	ExpiringAt float64
	// PageSize is how many credentials or runs one read returns (default
	// 1000).
	PageSize int
	// MaxPolicyEvents caps how many policy events the violations section
	// lists one by one (default 1000); all are counted.
	MaxPolicyEvents int
	// Parallel is how many connections the audit chain check may use at
	// once (audit.VerifyOptions.Parallel): 4 suits Postgres; SQLite's single
	// connection gains nothing. 0 or 1: sequential.
	Parallel int
}

// Stats says what a written report covers.
type Stats struct {
	Credentials int
	Runs        int
	Emergencies int
	Violations  int
	// Notifications counts the deliveries listed; NotificationsTruncated
	// says the period had more than the section lists.
	Notifications          int
	NotificationsTruncated bool
	Audit                  audit.Report
}

// ErrBadOptions is wrapped by Write for invalid options.
var ErrBadOptions = errors.New("invalid report options")

// Write writes the report of st to w. It reads credentials and runs in
// pages and writes each row as soon as it is read. Errors name what failed;
// the output written so far is then incomplete.
func Write(ctx context.Context, st store.Reader, w io.Writer, opts Options) (Stats, error) {
	g, err := newGenerator(st, opts)
	if err != nil {
		return Stats{}, err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	r, err := newRenderer(g.opts.Format, bw, g)
	if err != nil {
		return Stats{}, err
	}
	if err := g.run(ctx, r); err != nil {
		_ = bw.Flush()
		return g.stats, err
	}
	if err := bw.Flush(); err != nil {
		return g.stats, fmt.Errorf("writing the report: %w", err)
	}
	return g.stats, nil
}

// generator reads the store and feeds a renderer.
type generator struct {
	st       store.Reader
	opts     Options
	meta     Meta
	summary  Summary
	stats    Stats
	selected map[string]bool // ids of selected credentials; nil: all
	runbooks map[string]runbookState
	policy   []Violation
	skipped  map[string][]string // skipped steps by run (auditResult)
}

type runbookState struct {
	digest string
	err    error
}

func newGenerator(st store.Reader, opts Options) (*generator, error) {
	if opts.Format == "" {
		opts.Format = FormatMarkdown
	}
	if _, err := ParseFormat(string(opts.Format)); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadOptions, err)
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	opts.Now = opts.Now.UTC()
	if opts.Until.IsZero() {
		// Just after Now, so that a run created at Now is in the period.
		opts.Until = opts.Now.Add(time.Microsecond)
	}
	if opts.Since.IsZero() {
		opts.Since = opts.Until.Add(-DefaultPeriod)
	}
	opts.Since, opts.Until = opts.Since.UTC(), opts.Until.UTC()
	if !opts.Since.Before(opts.Until) {
		return nil, fmt.Errorf("%w: the period is empty: since %s is not before until %s", ErrBadOptions,
			opts.Since.Format(time.RFC3339), opts.Until.Format(time.RFC3339))
	}
	if opts.Title == "" {
		opts.Title = "rotator audit report"
	}
	if opts.RunbookDir == "" {
		opts.RunbookDir = "."
	}
	if opts.ExpiringAt <= 0 || opts.ExpiringAt >= 1 {
		opts.ExpiringAt = 0.9
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 1000
	}
	if opts.MaxPolicyEvents <= 0 {
		opts.MaxPolicyEvents = 1000
	}
	g := &generator{st: st, opts: opts, runbooks: map[string]runbookState{}}
	g.meta = Meta{
		Title: opts.Title, GeneratedAt: opts.Now.Truncate(time.Second), Since: opts.Since, Until: opts.Until,
		Selector: selectorString(opts.Selector), Database: opts.Database,
	}
	g.summary = newSummary(opts.Since, opts.Until)
	return g, nil
}

func selectorString(sel map[string]string) string {
	parts := make([]string, 0, len(sel))
	for _, k := range slices.Sorted(maps.Keys(sel)) {
		parts = append(parts, k+"="+sel[k])
	}
	return strings.Join(parts, ",")
}

// run makes the passes: aggregates first (the summary heads the report),
// then the sections, streaming.
func (g *generator) run(ctx context.Context, r renderer) error {
	if len(g.opts.Selector) > 0 {
		g.selected = map[string]bool{}
		if err := g.eachCredential(ctx, func(c store.Credential) error {
			g.selected[c.ID] = true
			return nil
		}); err != nil {
			return err
		}
	}
	// The audit chain is checked while the other aggregates are computed.
	auditDone := make(chan auditResult, 1)
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() { auditDone <- g.verifyAudit(actx) }()
	if err := g.aggregate(ctx); err != nil {
		cancel()
		<-auditDone
		return err
	}
	res := <-auditDone
	if res.err != nil {
		return res.err
	}
	g.summary.Audit, g.policy, g.skipped = res.status, res.policy, res.skipped
	g.summary.PolicyEvents = res.status.PolicyEvents
	g.summary.Violations += res.status.PolicyEvents
	g.summary.finish()
	g.stats.Audit = g.summary.Audit.Report
	if err := r.begin(g.meta, &g.summary); err != nil {
		return err
	}
	return g.sections(ctx, r)
}

// aggregate makes the first pass over credentials and runs, for the
// summary.
func (g *generator) aggregate(ctx context.Context) error {
	if err := g.eachCredential(ctx, func(c store.Credential) error {
		row := g.credentialRow(c)
		g.summary.addCredential(row)
		g.summary.Violations += len(g.credentialViolations(row))
		return nil
	}); err != nil {
		return err
	}
	return g.eachRun(ctx, store.RunFilter{}, func(run store.Run) error {
		g.summary.addRun(run)
		return nil
	})
}

// sections writes the sections, streaming.
func (g *generator) sections(ctx context.Context, r renderer) error {
	if err := r.start(sectionCredentials); err != nil {
		return err
	}
	if err := g.eachCredential(ctx, func(c store.Credential) error {
		g.stats.Credentials++
		return r.credential(g.credentialRow(c))
	}); err != nil {
		return err
	}
	if err := r.finish(sectionCredentials); err != nil {
		return err
	}

	if err := r.start(sectionRuns); err != nil {
		return err
	}
	if err := g.eachRun(ctx, store.RunFilter{}, func(run store.Run) error {
		row, err := g.runRow(ctx, run)
		if err != nil {
			return err
		}
		g.stats.Runs++
		return r.run(sectionRuns, row)
	}); err != nil {
		return err
	}
	if err := r.finish(sectionRuns); err != nil {
		return err
	}

	if err := r.start(sectionEmergencies); err != nil {
		return err
	}
	if err := g.eachRun(ctx, store.RunFilter{Trigger: store.TriggerEmergency}, func(run store.Run) error {
		row, err := g.runRow(ctx, run)
		if err != nil {
			return err
		}
		g.stats.Emergencies++
		return r.run(sectionEmergencies, row)
	}); err != nil {
		return err
	}
	if err := r.finish(sectionEmergencies); err != nil {
		return err
	}

	if err := r.start(sectionViolations); err != nil {
		return err
	}
	if err := g.eachCredential(ctx, func(c store.Credential) error {
		for _, v := range g.credentialViolations(g.credentialRow(c)) {
			g.stats.Violations++
			if err := r.violation(v); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		return err
	}
	for _, v := range g.policy {
		g.stats.Violations++
		if err := r.violation(v); err != nil {
			return err
		}
	}
	if err := r.finish(sectionViolations); err != nil {
		return err
	}
	if err := g.notificationSection(ctx, r); err != nil {
		return err
	}
	return r.end(&g.summary)
}

// auditResult is what the audit pass found.
type auditResult struct {
	status AuditStatus
	policy []Violation
	// skipped are the names of the steps recorded skipped, by run, from the
	// run.<step> events of the period.
	skipped map[string][]string
	err     error
}

// verifyAudit checks the whole chain and, in the same pass, collects the
// policy events of the period. It touches no generator state, so it runs
// beside the aggregating passes.
func (g *generator) verifyAudit(ctx context.Context) auditResult {
	since, until := g.opts.Since, g.opts.Until
	var res auditResult
	var mu sync.Mutex // Visit may be called from several goroutines
	res.skipped = map[string][]string{}
	rep, err := audit.Verify(ctx, g.st, audit.VerifyOptions{Parallel: g.opts.Parallel, Visit: func(ev store.AuditEvent) {
		if skippedStep(ev) && !ev.OccurredAt.Before(since) && (g.selected == nil || g.selected[ev.CredentialID]) {
			mu.Lock()
			res.skipped[ev.RunID] = append(res.skipped[ev.RunID], strings.TrimPrefix(ev.Action, "run."))
			mu.Unlock()
			return
		}
		if !strings.HasPrefix(ev.Action, "policy.") || ev.OccurredAt.Before(since) || !ev.OccurredAt.Before(until) {
			return
		}
		if g.selected != nil && !g.selected[ev.CredentialID] {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		res.status.PolicyEvents++
		if len(res.policy) < g.opts.MaxPolicyEvents {
			res.policy = append(res.policy, policyViolation(ev, g.link))
		}
	}})
	if err != nil {
		res.err = fmt.Errorf("verifying the audit chain: %w", err)
		return res
	}
	res.status.Report = rep
	for _, steps := range res.skipped {
		slices.Sort(steps)
	}
	// Listed in chain order whatever order they were visited in.
	slices.SortFunc(res.policy, func(a, b Violation) int { return cmp.Compare(*a.EventID, *b.EventID) })
	return res
}

// skippedQuoted is the outcome of a skipped step as it appears in an
// event's data: a cheap filter before decoding (Postgres re-formats JSON).
var skippedQuoted = []byte(`"` + string(rotation.StepSkipped) + `"`)

// skippedStep reports whether ev records a step that was skipped.
func skippedStep(ev store.AuditEvent) bool {
	if ev.RunID == "" || !strings.HasPrefix(ev.Action, "run.") || !bytes.Contains(ev.Data, skippedQuoted) {
		return false
	}
	var d struct {
		Outcome string `json:"outcome"`
	}
	return json.Unmarshal(ev.Data, &d) == nil && d.Outcome == string(rotation.StepSkipped)
}

// eachCredential calls fn for every selected live credential, by id, a
// page at a time.
func (g *generator) eachCredential(ctx context.Context, fn func(store.Credential) error) error {
	after := ""
	for {
		page, err := g.st.ListCredentials(ctx, store.CredentialFilter{Labels: g.opts.Selector, AfterID: after, Limit: g.opts.PageSize})
		if err != nil {
			return fmt.Errorf("listing credentials after %q: %w", after, err)
		}
		for _, c := range page {
			if err := fn(c); err != nil {
				return err
			}
		}
		if len(page) < g.opts.PageSize {
			return nil
		}
		after = page[len(page)-1].ID
	}
}

// eachRun calls fn for every run of a selected credential created in the
// period, newest first, a page at a time. Pages are cut by creation time;
// the runs that share the oldest time of a full page are read together, so
// none is skipped or repeated.
func (g *generator) eachRun(ctx context.Context, f store.RunFilter, fn func(store.Run) error) error {
	emit := func(r store.Run) error {
		if g.selected != nil && !g.selected[r.CredentialID] {
			return nil
		}
		return fn(r)
	}
	f.Since, f.Until, f.Limit = g.opts.Since, g.opts.Until, g.opts.PageSize
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("listing runs: %w", context.Cause(ctx))
		}
		page, err := g.st.ListRuns(ctx, f)
		if err != nil {
			return fmt.Errorf("listing runs before %s: %w", f.Until.Format(time.RFC3339Nano), err)
		}
		if len(page) < f.Limit {
			for _, r := range page {
				if err := emit(r); err != nil {
					return err
				}
			}
			return nil
		}
		oldest := page[len(page)-1].CreatedAt
		for _, r := range page {
			if r.CreatedAt.After(oldest) {
				if err := emit(r); err != nil {
					return err
				}
			}
		}
		same := f
		same.Since, same.Until, same.Limit = oldest, oldest.Add(time.Microsecond), 0
		tied, err := g.st.ListRuns(ctx, same)
		if err != nil {
			return fmt.Errorf("listing runs created at %s: %w", oldest.Format(time.RFC3339Nano), err)
		}
		for _, r := range tied {
			if err := emit(r); err != nil {
				return err
			}
		}
		if !oldest.After(g.opts.Since) {
			return nil
		}
		f.Until = oldest
	}
}

// runbookDigest returns the current digest of a runbook file ("" if it
// cannot be read), cached per path.
func (g *generator) runbookDigest(path string) (string, error) {
	if s, ok := g.runbooks[path]; ok {
		return s.digest, s.err
	}
	ref, err := runbook.Resolve(g.opts.RunbookDir, path)
	s := runbookState{digest: ref.Digest, err: err}
	g.runbooks[path] = s
	return s.digest, s.err
}

// anchorOK reports whether a full reference (path#anchor) resolves, cached.
func (g *generator) anchorOK(ref string) error {
	key := "#" + ref
	if s, ok := g.runbooks[key]; ok {
		return s.err
	}
	_, err := runbook.Resolve(g.opts.RunbookDir, ref)
	g.runbooks[key] = runbookState{err: err}
	return err
}

// link turns a runbook reference into a link.
func (g *generator) link(path, anchor string) Link {
	if path == "" {
		return Link{}
	}
	l := Link{Path: path, Anchor: anchor, Ref: path}
	if anchor != "" {
		l.Ref += "#" + anchor
	}
	l.URL = g.opts.RunbookBaseURL + l.Ref
	return l
}
