package report

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"
)

// section is a part of the report that lists rows.
type section int

const (
	sectionCredentials section = iota
	sectionRuns
	sectionEmergencies
	sectionViolations
	sectionNotifications
)

// renderer writes one format. Calls come in order: begin, then for each
// section start, its rows, finish; then end. Renderers write to a
// bufio.Writer, whose first write error sticks and is returned by the
// final Flush, so single writes go unchecked.
type renderer interface {
	begin(m Meta, s *Summary) error
	start(sec section) error
	credential(row CredentialRow) error
	run(sec section, row RunRow) error
	violation(v Violation) error
	notification(n Notification) error
	finish(sec section) error
	end(s *Summary) error
}

func newRenderer(f Format, w *bufio.Writer, g *generator) (renderer, error) {
	switch f {
	case FormatJSON:
		return &jsonRenderer{w: w}, nil
	case FormatCSV:
		return &csvRenderer{w: csv.NewWriter(w)}, nil
	case FormatMarkdown:
		return &mdRenderer{w: w}, nil
	case FormatHTML:
		return &htmlRenderer{w: w, now: g.opts.Now, expiringAt: g.opts.ExpiringAt}, nil
	}
	return nil, fmt.Errorf("%w: unknown format %q", ErrBadOptions, f)
}

// jsonRenderer writes one object (docs/report-schema.json):
//
//	{"report": {...}, "summary": {...}, "audit_chain": {...},
//	 "credentials": [...], "runs": [...], "emergencies": [...], "violations": [...]}
//
// with one array element per line.
type jsonRenderer struct {
	w     *bufio.Writer
	first bool
}

var sectionKeys = map[section]string{
	sectionCredentials: "credentials", sectionRuns: "runs", sectionEmergencies: "emergencies", sectionViolations: "violations",
	sectionNotifications: "notifications",
}

func (r *jsonRenderer) begin(m Meta, s *Summary) error {
	_, _ = r.w.WriteString(`{"report":`)
	if err := r.value(m); err != nil {
		return err
	}
	_, _ = r.w.WriteString(",\n\"summary\":")
	if err := r.value(s); err != nil {
		return err
	}
	_, _ = r.w.WriteString(",\n\"audit_chain\":")
	return r.value(s.Audit)
}

func (r *jsonRenderer) value(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encoding the report: %w", err)
	}
	_, err = r.w.Write(b)
	return err
}

func (r *jsonRenderer) start(sec section) error {
	r.first = true
	_, err := fmt.Fprintf(r.w, ",\n%q:[", sectionKeys[sec])
	return err
}

func (r *jsonRenderer) row(v any) error {
	if r.first {
		_, _ = r.w.WriteString("\n")
		r.first = false
	} else {
		_, _ = r.w.WriteString(",\n")
	}
	return r.value(v)
}

func (r *jsonRenderer) credential(row CredentialRow) error { return r.row(row) }
func (r *jsonRenderer) run(_ section, row RunRow) error    { return r.row(row) }
func (r *jsonRenderer) violation(v Violation) error        { return r.row(v) }

func (r *jsonRenderer) finish(section) error {
	_, err := r.w.WriteString("]")
	return err
}

func (r *jsonRenderer) end(*Summary) error {
	_, err := r.w.WriteString("}\n")
	return err
}

// CSVColumns are the columns of the CSV format, in order. Each record
// starts with its section (credential, run, violation or audit_chain); a
// column that does not apply to a section is empty. Emergency runs are the
// run records whose trigger is emergency.
var CSVColumns = []string{
	"section", "id", "credential", "consumer", "provider", "owner", "labels", "status", "outcome", "flags",
	"scope", "granted_scope", "age_seconds", "max_age_seconds", "age_fraction", "last_rotated_at",
	"next_rotation_at", "expires_at", "current_version", "fingerprint", "trigger", "actor", "reason", "attempt",
	"created_at", "started_at", "finished_at", "duration_seconds", "failed_step", "error", "kind", "detail",
	"runbook", "runbook_url", "runbook_digest", "current_runbook_digest", "runbook_changed",
	"granted_scope_reported", "skipped_steps", "receiver",
}

var csvIndex = func() map[string]int {
	m := map[string]int{}
	for i, c := range CSVColumns {
		m[c] = i
	}
	return m
}()

type csvRenderer struct {
	w *csv.Writer
}

func (r *csvRenderer) record(sec string, fields map[string]string) error {
	rec := make([]string, len(CSVColumns))
	rec[0] = sec
	for k, v := range fields {
		i, ok := csvIndex[k]
		if !ok {
			return fmt.Errorf("report: unknown CSV column %q", k)
		}
		rec[i] = v
	}
	if err := r.w.Write(rec); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}

func (r *csvRenderer) begin(Meta, *Summary) error {
	return r.w.Write(CSVColumns)
}

func (r *csvRenderer) start(section) error { return nil }

func (r *csvRenderer) credential(c CredentialRow) error {
	f := map[string]string{
		"id": c.ID, "credential": c.ID, "consumer": cell(c.Consumer), "provider": c.Provider, "owner": cell(c.Owner),
		"labels": cell(labelsText(c.Labels)), "status": c.Status, "flags": strings.Join(c.Flags, " "),
		"scope": cell(strings.Join(c.Scope, " ")), "granted_scope": cell(strings.Join(c.GrantedScope, " ")),
		"granted_scope_reported": strconv.FormatBool(c.GrantedScopeReported),
		"max_age_seconds":        strconv.FormatInt(c.MaxAgeSeconds, 10),
		"last_rotated_at":        csvTime(c.LastRotatedAt), "next_rotation_at": csvTime(c.NextRotationAt), "expires_at": csvTime(c.ExpiresAt),
		"runbook": cell(c.Runbook.Ref), "runbook_url": cell(c.Runbook.URL),
	}
	if c.AgeSeconds != nil {
		f["age_seconds"] = strconv.FormatInt(*c.AgeSeconds, 10)
	}
	if c.AgeFraction != nil {
		f["age_fraction"] = strconv.FormatFloat(*c.AgeFraction, 'f', -1, 64)
	}
	if c.CurrentVersion != nil {
		f["current_version"], f["fingerprint"] = c.CurrentVersion.ID, c.CurrentVersion.Fingerprint
	}
	if c.RunbookProblem != nil {
		f["detail"] = cell(*c.RunbookProblem)
	}
	return r.record("credential", f)
}

func (r *csvRenderer) run(sec section, row RunRow) error {
	if sec == sectionEmergencies {
		return nil // already written as a run
	}
	f := map[string]string{
		"id": row.ID, "credential": row.Credential, "status": row.State, "outcome": row.Outcome, "trigger": row.Trigger,
		"actor": cell(row.Actor), "reason": cell(row.Reason), "attempt": strconv.Itoa(row.Attempt),
		"created_at": row.CreatedAt.Format(time.RFC3339Nano), "started_at": csvTime(row.StartedAt), "finished_at": csvTime(row.FinishedAt),
		"runbook": cell(row.Runbook.Ref), "runbook_url": cell(row.Runbook.URL), "runbook_digest": row.RunbookDigest,
		"runbook_changed": strconv.FormatBool(row.RunbookChanged),
	}
	if row.DurationSeconds != nil {
		f["duration_seconds"] = strconv.FormatFloat(*row.DurationSeconds, 'f', -1, 64)
	}
	if row.FailedStep != nil {
		f["failed_step"] = *row.FailedStep
	}
	if len(row.SkippedSteps) > 0 {
		f["skipped_steps"] = cell(strings.Join(row.SkippedSteps, " "))
	}
	if row.Error != nil {
		f["error"] = cell(*row.Error)
	}
	if row.CurrentRunbookDigest != nil {
		f["current_runbook_digest"] = *row.CurrentRunbookDigest
	}
	return r.record("run", f)
}

func (r *csvRenderer) violation(v Violation) error {
	f := map[string]string{
		"credential": v.Credential, "kind": v.Kind, "detail": cell(v.Detail), "created_at": csvTime(v.OccurredAt),
		"runbook": cell(v.Runbook.Ref), "runbook_url": cell(v.Runbook.URL),
	}
	if v.EventID != nil {
		f["id"] = strconv.FormatInt(*v.EventID, 10)
	}
	return r.record("violation", f)
}

func (r *csvRenderer) finish(section) error { return nil }

func (r *csvRenderer) end(s *Summary) error {
	a := s.Audit
	f := map[string]string{"outcome": "ok", "detail": fmt.Sprintf("%d events checked, %d unsealed, head seq %d hash %s", a.Checked, a.Unsealed, a.HeadSeq, a.HeadHash)}
	if !a.OK {
		f["outcome"] = "broken"
		f["kind"] = string(a.Problem.Kind)
		f["id"] = strconv.FormatInt(a.Problem.EventID, 10)
		f["detail"] = cell(a.Problem.Message)
	}
	if err := r.record("audit_chain", f); err != nil {
		return err
	}
	r.w.Flush()
	if err := r.w.Error(); err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	return nil
}

// cell defuses a free-text value that a spreadsheet would run as a
// formula (=, +, -, @, tab or CR first) by prefixing a quote.
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

func csvTime(t *time.Time) string {
	if t == nil {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func labelsText(m map[string]string) string {
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ",")
}
