package report

import (
	"bufio"
	"fmt"
	"slices"
	"strings"
	"time"
)

// mdRenderer writes GitHub-flavoured Markdown: a summary, then one table
// per section, every row linking its runbook section.
type mdRenderer struct {
	w    *bufio.Writer
	rows int
	// header is the current section's table header, written before its
	// first row (an empty section gets a sentence instead).
	header string
}

func (r *mdRenderer) begin(m Meta, s *Summary) error {
	w := r.w
	fmt.Fprintf(w, "# %s\n\n", mdText(m.Title))
	fmt.Fprintf(w, "- **Period:** %s to %s\n", m.Since.Format(time.RFC3339), m.Until.Format(time.RFC3339))
	fmt.Fprintf(w, "- **Generated:** %s\n", m.GeneratedAt.Format(time.RFC3339))
	if m.Database != "" {
		fmt.Fprintf(w, "- **Database:** %s\n", mdText(m.Database))
	}
	if m.Selector != "" {
		fmt.Fprintf(w, "- **Selector:** `%s`\n", mdCode(m.Selector))
	}
	fmt.Fprintf(w, "\n## Summary\n\n")
	fmt.Fprintf(w, "| | |\n|---|---|\n")
	fmt.Fprintf(w, "| Credentials | %d (%s) |\n", s.Credentials, countsText(s.ByStatus))
	fmt.Fprintf(w, "| Flags | %s |\n", orNone(countsText(s.ByFlag)))
	fmt.Fprintf(w, "| Runs in the period | %d: %d succeeded, %d rolled back, %d failed, %d in progress |\n",
		s.Runs, s.Succeeded, s.RolledBack, s.Failed, s.InProgress)
	fmt.Fprintf(w, "| Success rate | %s |\n", rateText(s.SuccessRate))
	fmt.Fprintf(w, "| Emergency rotations | %d |\n", s.Emergencies)
	fmt.Fprintf(w, "| Policy violations | %d |\n", s.Violations)
	fmt.Fprintf(w, "| Audit chain | %s |\n", mdText(auditText(s.Audit)))
	fmt.Fprintf(w, "\n### Age as a fraction of max age\n\n| Age | Credentials |\n|---|---|\n")
	for i, n := range s.AgeHistogram {
		fmt.Fprintf(w, "| %s | %d %s |\n", ageBucketLabel(i), n, strings.Repeat("█", barLen(n, s.Credentials, 30)))
	}
	if s.NoAge > 0 {
		fmt.Fprintf(w, "| unknown (no current version or no max age) | %d |\n", s.NoAge)
	}
	_, err := fmt.Fprintf(w, "\n")
	return err
}

func barLen(n, total, width int) int {
	if total == 0 || n == 0 {
		return 0
	}
	return max(1, n*width/total)
}

func (r *mdRenderer) start(sec section) error {
	r.rows = 0
	titles := map[section]string{
		sectionCredentials: "## Inventory compliance", sectionRuns: "## Runs in the period",
		sectionEmergencies: "## Emergency rotations", sectionViolations: "## Policy violations",
		sectionNotifications: "## Notifications",
	}
	switch sec {
	case sectionCredentials:
		r.header = "| Credential | Consumer | Scope (declared → granted) | Age / max age | Last rotation | Next rotation | Status | Flags | Runbook |\n" +
			"|---|---|---|---|---|---|---|---|---|\n"
	case sectionRuns:
		r.header = "| Run | Credential | Trigger | Actor | Reason | Outcome | Started | Duration | Failed step | Runbook |\n" +
			"|---|---|---|---|---|---|---|---|---|---|\n"
	case sectionEmergencies:
		r.header = "| Run | Credential | Actor | Reason | Outcome | Started | Runbook |\n" +
			"|---|---|---|---|---|---|---|\n"
	case sectionViolations:
		r.header = "| Credential | Violation | Detail | When | Runbook |\n" +
			"|---|---|---|---|---|\n"
	case sectionNotifications:
		r.header = "| Delivery | Receiver | State | Kinds | Credentials | Events | Created | Attempts |\n" +
			"|---|---|---|---|---|---|---|---|\n"
	}
	_, err := fmt.Fprintf(r.w, "%s\n\n", titles[sec])
	return err
}

// row counts a row, writing the table header before the first.
func (r *mdRenderer) row() {
	if r.rows == 0 {
		_, _ = r.w.WriteString(r.header)
	}
	r.rows++
}

func (r *mdRenderer) credential(c CredentialRow) error {
	r.row()
	scope := mdText(strings.Join(c.Scope, ", "))
	switch {
	case !c.GrantedScopeReported:
		scope += " → granted: not reported"
	case len(c.GrantedScope) > 0:
		scope += " → " + mdText(strings.Join(c.GrantedScope, ", "))
	}
	age := fmtSeconds(c.AgeSeconds) + " / " + fmtSeconds(&c.MaxAgeSeconds)
	if c.AgeFraction != nil {
		age += fmt.Sprintf(" (%.0f%%)", *c.AgeFraction*100)
	}
	_, err := fmt.Fprintf(r.w, "| `%s` | %s | %s | %s | %s | %s | %s | %s | %s |\n",
		mdCode(c.ID), mdText(c.Consumer), orDash(scope), age, fmtTimePtr(c.LastRotatedAt), fmtTimePtr(c.NextRotationAt),
		c.Status, orDash(strings.Join(c.Flags, ", ")), mdLink(c.Runbook, c.RunbookProblem != nil))
	return err
}

func (r *mdRenderer) run(sec section, row RunRow) error {
	r.row()
	rb := mdLink(row.Runbook, false)
	if row.RunbookChanged {
		rb += " ⚠ runbook changed since this run"
	}
	var err error
	if sec == sectionEmergencies {
		_, err = fmt.Fprintf(r.w, "| `%s` | `%s` | %s | %s | %s | %s | %s |\n", mdCode(row.ID), mdCode(row.Credential),
			mdText(orDash(row.Actor)), mdText(orDash(row.Reason)), row.Outcome, fmtTimePtr(row.StartedAt), rb)
		return err
	}
	failed := "-"
	if row.FailedStep != nil {
		failed = mdText(*row.FailedStep)
		if row.Error != nil {
			failed += ": " + mdText(truncate(*row.Error, 120))
		}
	}
	if s := skippedText(row.SkippedSteps); s != "" {
		failed = strings.TrimPrefix(failed+"; "+s, "-; ")
	}
	_, err = fmt.Fprintf(r.w, "| `%s` | `%s` | %s | %s | %s | %s | %s | %s | %s | %s |\n", mdCode(row.ID), mdCode(row.Credential),
		row.Trigger, mdText(orDash(row.Actor)), mdText(orDash(row.Reason)), row.Outcome, fmtTimePtr(row.StartedAt),
		durationText(row.DurationSeconds), failed, rb)
	return err
}

func (r *mdRenderer) violation(v Violation) error {
	r.row()
	_, err := fmt.Fprintf(r.w, "| `%s` | %s | %s | %s | %s |\n", mdCode(orDash(v.Credential)), mdText(v.Kind), mdText(v.Detail),
		fmtTimePtr(v.OccurredAt), mdLink(v.Runbook, false))
	return err
}

func (r *mdRenderer) finish(sec section) error {
	if r.rows > 0 {
		_, err := r.w.WriteString("\n")
		return err
	}
	empty := map[section]string{
		sectionCredentials: "No credentials.", sectionRuns: "No runs in the period.",
		sectionEmergencies: "No emergency rotations in the period.", sectionViolations: "No policy violations.",
		sectionNotifications: "No notifications in the period.",
	}
	_, err := fmt.Fprintf(r.w, "%s\n\n", empty[sec])
	return err
}

func (r *mdRenderer) end(s *Summary) error {
	a := s.Audit
	w := r.w
	fmt.Fprintf(w, "## Audit chain\n\n")
	fmt.Fprintf(w, "- **Status:** %s\n", mdText(auditText(a)))
	fmt.Fprintf(w, "- **Checked:** %d sealed events (seq %d..%d)\n", a.Checked, a.FirstSeq, a.HeadSeq)
	fmt.Fprintf(w, "- **Head:** seq %d, hash `%s` (record it outside the database to detect later rewrites)\n", a.HeadSeq, a.HeadHash)
	fmt.Fprintf(w, "- **Unsealed:** %d events not yet chained\n", a.Unsealed)
	if p := a.Problem; p != nil {
		fmt.Fprintf(w, "- **First bad event:** %s at seq %d (event %d): %s\n", p.Kind, p.Seq, p.EventID, mdText(p.Message))
	}
	_, err := fmt.Fprintf(w, "\n---\nGenerated by rotator. Secret values never appear in reports; versions are shown by id and fingerprint.\n")
	return err
}

func mdText(s string) string {
	return strings.NewReplacer("|", `\|`, "\n", " ", "\r", " ", "<", "&lt;", ">", "&gt;", "[", `\[`, "]", `\]`, "`", "'").Replace(s)
}

func mdCode(s string) string { return strings.NewReplacer("`", "'", "|", `\|`, "\n", " ").Replace(s) }

func mdLink(l Link, broken bool) string {
	if l.Ref == "" {
		return "-"
	}
	text := mdText(l.Ref)
	if broken {
		text += " (unresolved)"
	}
	return "[" + text + "](" + strings.NewReplacer(" ", "%20", ")", "%29", "(", "%28").Replace(l.URL) + ")"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

func durationText(d *float64) string {
	if d == nil {
		return "-"
	}
	return (time.Duration(*d * float64(time.Second))).Round(time.Millisecond).String()
}

func rateText(r *float64) string {
	if r == nil {
		return "- (no finished runs)"
	}
	return fmt.Sprintf("%.1f%%", *r*100)
}

// countsText renders counts as "a: 1, b: 2" in a stable order.
func countsText(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s: %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

func auditText(a AuditStatus) string {
	if a.OK {
		s := fmt.Sprintf("intact: %d events checked", a.Checked)
		if a.Unsealed > 0 {
			s += fmt.Sprintf(", %d not yet sealed", a.Unsealed)
		}
		return s
	}
	return fmt.Sprintf("BROKEN: %s event at seq %d (event %d)", a.Problem.Kind, a.Problem.Seq, a.Problem.EventID)
}

func ageBucketLabel(i int) string {
	lo := 0.0
	if i > 0 {
		lo = AgeBuckets[i-1]
	}
	if i == len(AgeBuckets) {
		return fmt.Sprintf("> %.0f%% (past max age)", lo*100)
	}
	return fmt.Sprintf("%.0f–%.0f%%", lo*100, AgeBuckets[i]*100)
}
