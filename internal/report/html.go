package report

import (
	"bufio"
	"fmt"
	"html"
	"strings"
	"time"
)

// htmlRenderer writes one self-contained HTML page: inline CSS, inline SVG
// charts, no script and no external resource (a Content-Security-Policy
// forbids them), laid out to print on A4 landscape.
type htmlRenderer struct {
	w          *bufio.Writer
	now        time.Time
	expiringAt float64
	rows       int
}

const htmlStyle = `
:root { --fg:#1f2328; --muted:#59636e; --line:#d1d9e0; --bg:#fff; --zebra:#f6f8fa;
  --ok:#1a7f37; --warn:#9a6700; --bad:#cf222e; --info:#0969da; --idle:#8c959f; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--fg); background: var(--bg); margin: 0 auto; padding: 24px 32px; max-width: 1500px; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 14px; margin: 0 0 6px; }
.meta { color: var(--muted); margin: 0 0 16px; }
nav a { margin-right: 14px; color: var(--info); text-decoration: none; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(170px, 1fr)); gap: 12px; margin: 16px 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: 10px 12px; }
.card .n { font-size: 22px; font-weight: 600; }
.card .l { color: var(--muted); font-size: 12px; }
.card.bad { border-color: var(--bad); } .card.bad .n { color: var(--bad); }
.card.ok .n { color: var(--ok); }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 16px; }
figure { margin: 0; border: 1px solid var(--line); border-radius: 6px; padding: 10px; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; }
svg text { font: 11px system-ui, sans-serif; fill: var(--muted); }
table { border-collapse: collapse; width: 100%; font-size: 12.5px; }
th, td { text-align: left; vertical-align: top; padding: 4px 6px; border-bottom: 1px solid var(--line); }
th { background: var(--zebra); position: sticky; top: 0; }
tbody tr:nth-child(even) { background: var(--zebra); }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12px; }
.badge { display: inline-block; padding: 0 6px; border-radius: 10px; font-size: 11.5px; border: 1px solid currentColor; white-space: nowrap; }
.s-healthy, .o-succeeded { color: var(--ok); }
.s-due, .s-rotating, .s-new, .o-in_progress { color: var(--info); }
.s-overdue, .s-failing, .o-rolled_back, .f-expiring, .f-failing { color: var(--warn); }
.s-expired, .s-needs_attention, .o-failed, .f-overdue, .f-needs_attention, .f-over_scoped, .changed { color: var(--bad); }
.muted { color: var(--muted); }
.err { color: var(--bad); font-size: 11.5px; }
.empty { color: var(--muted); font-style: italic; }
a { color: var(--info); }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
@page { size: A4 landscape; margin: 12mm; }
@media print {
  body { padding: 0; max-width: none; font-size: 10px; }
  * { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  nav { display: none; }
  th { position: static; }
  thead { display: table-header-group; }
  tr, figure, .card { break-inside: avoid; }
  h2 { break-after: avoid; }
  table { font-size: 9px; }
  a { color: inherit; text-decoration: none; }
  .charts { grid-template-columns: 1fr 1fr; }
}
`

func (r *htmlRenderer) begin(m Meta, s *Summary) error {
	w := r.w
	fmt.Fprintf(w, `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="generator" content="rotator">
<title>%s</title>
<style>%s</style>
</head>
<body>
<header>
<h1>%s</h1>
<p class="meta">Period %s to %s · generated %s`, esc(m.Title), htmlStyle, esc(m.Title),
		m.Since.Format(time.RFC3339), m.Until.Format(time.RFC3339), m.GeneratedAt.Format(time.RFC3339))
	if m.Database != "" {
		fmt.Fprintf(w, " · database %s", esc(m.Database))
	}
	if m.Selector != "" {
		fmt.Fprintf(w, ` · selector <code>%s</code>`, esc(m.Selector))
	}
	fmt.Fprint(w, `</p>
<nav><a href="#summary">Summary</a><a href="#credentials">Inventory</a><a href="#runs">Runs</a><a href="#emergencies">Emergencies</a><a href="#violations">Violations</a><a href="#notifications">Notifications</a><a href="#audit">Audit chain</a></nav>
</header>
<section id="summary">
<h2>Summary</h2>
<div class="cards">
`)
	card := func(class, n, label string) {
		fmt.Fprintf(w, "<div class=\"card %s\"><div class=\"n\">%s</div><div class=\"l\">%s</div></div>\n", class, n, label)
	}
	card("", fmt.Sprint(s.Credentials), "credentials · "+esc(countsText(s.ByStatus)))
	flagged := s.ByFlag[FlagOverdue] + s.ByFlag[FlagNeedsAttention] + s.ByFlag[FlagOverScoped]
	card(classIf(flagged > 0, "bad"), fmt.Sprint(flagged), "overdue, needs attention or over-scoped · "+esc(orNone(countsText(s.ByFlag))))
	card("", fmt.Sprint(s.Runs), fmt.Sprintf("runs: %d succeeded, %d rolled back, %d failed, %d in progress", s.Succeeded, s.RolledBack, s.Failed, s.InProgress))
	card(classIf(s.SuccessRate != nil && *s.SuccessRate < 0.95, "bad"), esc(strings.TrimSuffix(rateText(s.SuccessRate), " (no finished runs)")), "success rate of finished runs")
	card(classIf(s.Emergencies > 0, "bad"), fmt.Sprint(s.Emergencies), "emergency rotations")
	card(classIf(s.Violations > 0, "bad"), fmt.Sprint(s.Violations), "policy violations")
	if s.Audit.OK {
		card("ok", "intact", fmt.Sprintf("audit chain · %d events checked, %d unsealed", s.Audit.Checked, s.Audit.Unsealed))
	} else {
		card("bad", "BROKEN", esc(fmt.Sprintf("audit chain · %s event at seq %d (event %d)", s.Audit.Problem.Kind, s.Audit.Problem.Seq, s.Audit.Problem.EventID)))
	}
	fmt.Fprint(w, "</div>\n<div class=\"charts\">\n")
	ageChart(w, s)
	timelineChart(w, s)
	successChart(w, s)
	_, err := fmt.Fprint(w, "</div>\n</section>\n")
	return err
}

func classIf(cond bool, class string) string {
	if cond {
		return class
	}
	return ""
}

func (r *htmlRenderer) start(sec section) error {
	r.rows = 0
	w := r.w
	switch sec {
	case sectionCredentials:
		fmt.Fprint(w, `<section id="credentials">
<h2>Inventory compliance</h2>
<table>
<thead><tr><th>Credential</th><th>Consumer</th><th>Owner</th><th>Declared scope</th><th>Granted scope</th><th>Age / max age</th><th>Last rotation</th><th>Next rotation</th><th>Status</th><th>Flags</th><th>Current version</th><th>Runbook</th></tr></thead>
<tbody>
`)
	case sectionRuns:
		fmt.Fprint(w, `<section id="runs">
<h2>Runs in the period</h2>
<table>
<thead><tr><th>Run</th><th>Credential</th><th>Trigger</th><th>Actor</th><th>Reason</th><th>Outcome</th><th>Started</th><th>Duration</th><th>Failed step</th><th>Runbook followed</th></tr></thead>
<tbody>
`)
	case sectionEmergencies:
		fmt.Fprint(w, `<section id="emergencies">
<h2>Emergency rotations</h2>
<table>
<thead><tr><th>Run</th><th>Credential</th><th>Actor</th><th>Reason</th><th>Outcome</th><th>Started</th><th>Finished</th><th>Runbook followed</th></tr></thead>
<tbody>
`)
	case sectionViolations:
		fmt.Fprint(w, `<section id="violations">
<h2>Policy violations</h2>
<table>
<thead><tr><th>Credential</th><th>Violation</th><th>Detail</th><th>When</th><th>Runbook</th></tr></thead>
<tbody>
`)
	case sectionNotifications:
		fmt.Fprint(w, `<section id="notifications">
<h2>Notifications</h2>
<table>
<thead><tr><th>Delivery</th><th>Receiver</th><th>State</th><th>Kinds</th><th>Credentials</th><th>Events</th><th>Created</th><th>Attempts</th></tr></thead>
<tbody>
`)
	}
	return nil
}

func (r *htmlRenderer) credential(c CredentialRow) error {
	r.rows++
	w := r.w
	fmt.Fprintf(w, "<tr><td><code>%s</code></td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s %s / %s</td><td>%s</td><td>%s</td>",
		esc(c.ID), esc(c.Consumer), esc(orDash(c.Owner)), esc(orDash(strings.Join(c.Scope, ", "))), grantedHTML(c),
		ageBar(c.AgeFraction, r.expiringAt), esc(fmtSeconds(c.AgeSeconds)), esc(fmtSeconds(&c.MaxAgeSeconds)),
		timeHTML(c.LastRotatedAt), timeHTML(c.NextRotationAt))
	fmt.Fprintf(w, `<td><span class="badge s-%s">%s</span></td><td>`, esc(c.Status), esc(c.Status))
	for _, f := range c.Flags {
		fmt.Fprintf(w, `<span class="badge f-%s">%s</span> `, esc(f), esc(f))
	}
	if c.CurrentVersion != nil {
		fmt.Fprintf(w, `</td><td class="mono">%s<br><span class="muted">fp %s</span></td>`, esc(c.CurrentVersion.ID), esc(c.CurrentVersion.Fingerprint))
	} else {
		fmt.Fprint(w, `</td><td class="muted">none</td>`)
	}
	_, err := fmt.Fprintf(w, "<td>%s</td></tr>\n", linkHTML(c.Runbook, c.RunbookProblem))
	return err
}

func grantedHTML(c CredentialRow) string {
	if !c.GrantedScopeReported {
		return `<span class="muted" title="the resource did not say which scope it granted">not reported</span>`
	}
	if len(c.GrantedScope) == 0 {
		return `<span class="muted">-</span>`
	}
	parts := make([]string, len(c.GrantedScope))
	for i, s := range c.GrantedScope {
		parts[i] = esc(s)
		for _, x := range c.ExtraScope {
			if x == s {
				parts[i] = `<span class="changed" title="granted but not declared">` + esc(s) + `</span>`
			}
		}
	}
	return strings.Join(parts, ", ")
}

func (r *htmlRenderer) run(sec section, row RunRow) error {
	r.rows++
	w := r.w
	rb := linkHTML(row.Runbook, nil)
	if row.RunbookChanged {
		rb += `<br><span class="badge changed" title="the runbook's digest differs from the one this run recorded">runbook changed since this run</span>`
	}
	if sec == sectionEmergencies {
		_, err := fmt.Fprintf(w, "<tr><td class=\"mono\">%s</td><td><code>%s</code></td><td>%s</td><td>%s</td><td><span class=\"badge o-%s\">%s</span></td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
			esc(row.ID), esc(row.Credential), esc(orDash(row.Actor)), esc(orDash(row.Reason)), esc(row.Outcome), esc(row.Outcome),
			timeHTML(row.StartedAt), timeHTML(row.FinishedAt), rb)
		return err
	}
	failed := `<span class="muted">-</span>`
	if row.FailedStep != nil {
		failed = esc(*row.FailedStep)
		if row.Error != nil {
			failed += `<br><span class="err">` + esc(truncate(*row.Error, 200)) + `</span>`
		}
	}
	if s := skippedText(row.SkippedSteps); s != "" {
		if row.FailedStep == nil {
			failed = ""
		} else {
			failed += "<br>"
		}
		failed += `<span class="muted" title="steps that did not do what their name says; a skipped revoke leaves the value valid until it expires">` + esc(s) + `</span>`
	}
	_, err := fmt.Fprintf(w, "<tr><td class=\"mono\">%s</td><td><code>%s</code></td><td>%s</td><td>%s</td><td>%s</td><td><span class=\"badge o-%s\">%s</span></td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
		esc(row.ID), esc(row.Credential), esc(row.Trigger), esc(orDash(row.Actor)), esc(orDash(row.Reason)), esc(row.Outcome), esc(row.Outcome),
		timeHTML(row.StartedAt), esc(durationText(row.DurationSeconds)), failed, rb)
	return err
}

func (r *htmlRenderer) violation(v Violation) error {
	r.rows++
	_, err := fmt.Fprintf(r.w, "<tr><td><code>%s</code></td><td><span class=\"badge f-overdue\">%s</span></td><td>%s</td><td>%s</td><td>%s</td></tr>\n",
		esc(orDash(v.Credential)), esc(v.Kind), esc(v.Detail), timeHTML(v.OccurredAt), linkHTML(v.Runbook, nil))
	return err
}

func (r *htmlRenderer) finish(sec section) error {
	cols := map[section]int{sectionCredentials: 12, sectionRuns: 10, sectionEmergencies: 8, sectionViolations: 5, sectionNotifications: 8}
	empty := map[section]string{
		sectionCredentials: "No credentials.", sectionRuns: "No runs in the period.",
		sectionEmergencies: "No emergency rotations in the period.", sectionViolations: "No policy violations.",
		sectionNotifications: "No notifications in the period.",
	}
	if r.rows == 0 {
		fmt.Fprintf(r.w, "<tr><td colspan=\"%d\" class=\"empty\">%s</td></tr>\n", cols[sec], empty[sec])
	}
	_, err := fmt.Fprint(r.w, "</tbody>\n</table>\n</section>\n")
	return err
}

func (r *htmlRenderer) end(s *Summary) error {
	a := s.Audit
	w := r.w
	fmt.Fprint(w, "<section id=\"audit\">\n<h2>Audit chain</h2>\n<table>\n<tbody>\n")
	status := `<span class="badge s-healthy">intact</span>`
	if !a.OK {
		status = `<span class="badge s-expired">BROKEN</span>`
	}
	fmt.Fprintf(w, "<tr><th>Status</th><td>%s</td></tr>\n", status)
	fmt.Fprintf(w, "<tr><th>Checked</th><td>%d sealed events (seq %d..%d)</td></tr>\n", a.Checked, a.FirstSeq, a.HeadSeq)
	fmt.Fprintf(w, "<tr><th>Head</th><td class=\"mono\">seq %d, hash %s</td></tr>\n", a.HeadSeq, esc(a.HeadHash))
	fmt.Fprintf(w, "<tr><th>Unsealed</th><td>%d events not yet chained</td></tr>\n", a.Unsealed)
	if p := a.Problem; p != nil {
		fmt.Fprintf(w, "<tr><th>First bad event</th><td class=\"err\">%s at seq %d (event %d): %s</td></tr>\n", esc(string(p.Kind)), p.Seq, p.EventID, esc(p.Message))
	}
	_, err := fmt.Fprint(w, `</tbody>
</table>
<p class="muted">Record the head (seq and hash) outside the database: a history rewritten or truncated later no longer has that hash at that seq.</p>
</section>
<footer>Generated by rotator. Secret values never appear in reports; versions are shown by id and fingerprint.</footer>
</body>
</html>
`)
	return err
}

func esc(s string) string { return html.EscapeString(s) }

func timeHTML(t *time.Time) string {
	if t == nil {
		return `<span class="muted">-</span>`
	}
	return `<time datetime="` + t.UTC().Format(time.RFC3339) + `">` + t.UTC().Format("2006-01-02 15:04") + `</time>`
}

// linkHTML links a runbook section; only relative and http(s) URLs become
// links.
func linkHTML(l Link, problem *string) string {
	if l.Ref == "" {
		if problem != nil {
			return `<span class="err">` + esc(*problem) + `</span>`
		}
		return `<span class="muted">-</span>`
	}
	out := esc(l.Ref)
	if safeURL(l.URL) {
		out = `<a href="` + esc(l.URL) + `">` + out + `</a>`
	}
	if problem != nil {
		out += `<br><span class="err" title="` + esc(*problem) + `">unresolved</span>`
	}
	return out
}

func safeURL(u string) bool {
	lower := strings.ToLower(u)
	if strings.HasPrefix(lower, "https://") || strings.HasPrefix(lower, "http://") {
		return true
	}
	// Relative: no scheme before the first '/', '#' or '?'.
	i := strings.IndexAny(lower, ":/#?")
	return i < 0 || lower[i] != ':'
}
