package report_test

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/report"
	"github.com/rotatorhq/rotator/internal/store"
)

// parsed is the JSON report, decoded loosely for assertions.
type parsed struct {
	Report      map[string]any         `json:"report"`
	Summary     map[string]any         `json:"summary"`
	AuditChain  map[string]any         `json:"audit_chain"`
	Credentials []report.CredentialRow `json:"credentials"`
	Runs        []report.RunRow        `json:"runs"`
	Emergencies []report.RunRow        `json:"emergencies"`
	Violations  []report.Violation     `json:"violations"`
}

func decodeJSON(t *testing.T, schema *schemaChecker, b []byte) parsed {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc any
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("report is not JSON: %v\n%s", err, b)
	}
	if errs := schema.validate(doc); len(errs) > 0 {
		t.Fatalf("report does not match docs/report-schema.json:\n%s", strings.Join(errs, "\n"))
	}
	var p parsed
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func byID[T any](rows []T, id func(T) string) map[string]T {
	m := map[string]T{}
	for _, r := range rows {
		m[id(r)] = r
	}
	return m
}

// TestSeededReport writes every format of a seeded database and checks
// what each must show.
func TestSeededReport(t *testing.T) {
	t.Parallel()
	schema := loadSchema(t)
	eachDialect(t, func(t *testing.T, st store.Store, exec func(string)) {
		s := seed(t, st)
		opts := report.Options{Now: now, Since: now.Add(-30 * 24 * time.Hour), RunbookDir: s.dir, PageSize: 4, Database: string(st.Dialect()), Parallel: 4}

		opts.Format = report.FormatJSON
		p := decodeJSON(t, schema, write(t, st, opts))
		creds := byID(p.Credentials, func(c report.CredentialRow) string { return c.ID })
		if len(creds) != 7 || len(p.Credentials) != 7 {
			t.Fatalf("credentials: %d rows, want 7", len(p.Credentials))
		}
		wantFlags := map[string][]string{
			"healthy-1": {}, "old-2": {report.FlagOverdue}, "expiring-3": {report.FlagExpiring},
			"scoped-4": {report.FlagOverScoped}, "failing-5": {report.FlagFailing},
			"attention-6": {report.FlagNeedsAttention}, "norunbook-7": {},
		}
		for id, want := range wantFlags {
			if got := creds[id].Flags; !slices.Equal(got, want) {
				t.Errorf("%s: flags %v, want %v", id, got, want)
			}
		}
		if c := creds["old-2"]; c.Status != "overdue" || c.AgeFraction == nil || *c.AgeFraction != 1.2 {
			t.Errorf("old-2: status %s, age fraction %v", c.Status, c.AgeFraction)
		}
		if c := creds["scoped-4"]; !slices.Equal(c.ExtraScope, []string{"admin"}) || !slices.Equal(c.GrantedScope, []string{"repo:read", "admin"}) {
			t.Errorf("scoped-4: granted %v, extra %v", c.GrantedScope, c.ExtraScope)
		}
		if c := creds["healthy-1"]; c.Runbook.Ref != "runbooks/generated.md#rotation" || c.Runbook.URL != c.Runbook.Ref || c.RunbookProblem != nil ||
			c.CurrentVersion == nil || c.CurrentVersion.Fingerprint != "fphealthy-1" {
			t.Errorf("healthy-1: %+v", c)
		}
		for id, c := range creds {
			if c.GrantedScopeReported != (id != "healthy-1") {
				t.Errorf("%s: granted_scope_reported %t", id, c.GrantedScopeReported)
			}
		}
		if c := creds["norunbook-7"]; c.RunbookProblem == nil {
			t.Error("norunbook-7: the missing runbook is not reported")
		}

		// Runs: the period's 4 + 12 tied, each once, newest first; not the older one.
		ids := make([]string, 0, len(p.Runs))
		for _, r := range p.Runs {
			ids = append(ids, r.ID)
		}
		if len(ids) != 4+s.tiedRuns || slices.Contains(ids, "run-before") {
			t.Fatalf("runs: %v", ids)
		}
		slices.Sort(ids)
		if len(slices.Compact(ids)) != 4+s.tiedRuns {
			t.Fatalf("runs repeated: %v", ids)
		}
		runs := byID(p.Runs, func(r report.RunRow) string { return r.ID })
		if r := runs["run-rb"]; r.Outcome != report.OutcomeRolledBack || r.FailedStep == nil || *r.FailedStep != "verify" ||
			r.Error == nil || r.DurationSeconds == nil || *r.DurationSeconds != 89 || r.RunbookChanged {
			t.Errorf("run-rb: %+v", r)
		}
		if r := runs["run-em"]; !r.RunbookChanged || r.CurrentRunbookDigest == nil || *r.CurrentRunbookDigest != s.currentDigest {
			t.Errorf("run-em: runbook changed %v, current digest %v", r.RunbookChanged, r.CurrentRunbookDigest)
		}
		if r := runs["run-ok"]; !slices.Equal(r.SkippedSteps, []string{"revoke_previous"}) {
			t.Errorf("run-ok: skipped steps %v, want [revoke_previous]", r.SkippedSteps)
		}
		if r := runs["run-rb"]; r.SkippedSteps == nil || len(r.SkippedSteps) != 0 {
			t.Errorf("run-rb: skipped steps %#v, want []", r.SkippedSteps)
		}
		if r := runs["run-wip"]; r.Outcome != report.OutcomeInProgress || r.FinishedAt != nil {
			t.Errorf("run-wip: %+v", r)
		}
		if len(p.Emergencies) != 1 || p.Emergencies[0].ID != "run-em" || p.Emergencies[0].Reason != "key leaked in INC-1234" {
			t.Errorf("emergencies: %+v", p.Emergencies)
		}

		// Violations: derived from state, then the period's policy events.
		var kinds []string
		for _, v := range p.Violations {
			kinds = append(kinds, v.Credential+":"+v.Kind)
		}
		want := []string{"old-2:max_age_exceeded", "scoped-4:over_scoped", "attention-6:needs_attention",
			"norunbook-7:runbook_unresolved", "scoped-4:over_scoped", "norunbook-7:max_age_exceeded"}
		slices.Sort(kinds)
		slices.Sort(want)
		if !slices.Equal(kinds, want) {
			t.Errorf("violations:\n got %v\nwant %v", kinds, want)
		}
		for _, v := range p.Violations {
			if v.EventID != nil && v.Kind == "over_scoped" && v.Runbook.Ref != "runbooks/generated.md#rotation" {
				t.Errorf("policy event violation links %q", v.Runbook.Ref)
			}
		}

		sum := p.Summary
		if sum["runs"] != float64(16) || sum["succeeded"] != float64(14) || sum["rolled_back"] != float64(1) ||
			sum["in_progress"] != float64(1) || sum["emergencies"] != float64(1) || sum["violations"] != float64(6) {
			t.Errorf("summary: %v", sum)
		}
		if p.AuditChain["ok"] != true || p.AuditChain["checked"] != float64(5) || p.AuditChain["policy_events"] != float64(2) {
			t.Errorf("audit chain: %v", p.AuditChain)
		}

		// CSV: parses, one record per credential, run and violation, then the chain.
		opts.Format = report.FormatCSV
		recs, err := csv.NewReader(bytes.NewReader(write(t, st, opts))).ReadAll()
		if err != nil {
			t.Fatalf("CSV does not parse: %v", err)
		}
		if !slices.Equal(recs[0], report.CSVColumns) {
			t.Errorf("CSV header %v", recs[0])
		}
		count := map[string]int{}
		for _, r := range recs[1:] {
			count[r[0]]++
		}
		if count["credential"] != 7 || count["run"] != 16 || count["violation"] != 6 || count["audit_chain"] != 1 {
			t.Errorf("CSV sections: %v", count)
		}
		col := map[string]int{}
		for i, c := range recs[0] {
			col[c] = i
		}
		for _, r := range recs[1:] {
			if r[0] == "run" && r[col["id"]] == "run-em" && (r[col["runbook_changed"]] != "true" || r[col["reason"]] != "key leaked in INC-1234") {
				t.Errorf("CSV run-em: %v", r)
			}
			if r[0] == "run" && r[col["id"]] == "run-ok" && r[col["skipped_steps"]] != "revoke_previous" {
				t.Errorf("CSV run-ok: skipped_steps %q", r[col["skipped_steps"]])
			}
			if r[0] == "credential" && r[col["granted_scope_reported"]] != strconv.FormatBool(r[col["id"]] != "healthy-1") {
				t.Errorf("CSV %s: granted_scope_reported %q", r[col["id"]], r[col["granted_scope_reported"]])
			}
		}

		// Markdown: sections, links, flags.
		opts.Format = report.FormatMarkdown
		md := string(write(t, st, opts))
		for _, want := range []string{
			"# rotator audit report", "## Inventory compliance", "## Runs in the period", "## Emergency rotations",
			"## Policy violations", "## Audit chain", "[runbooks/generated.md#rotation](runbooks/generated.md#rotation)",
			"runbook changed since this run", "key leaked in INC-1234", "verify: verify failed: scope mismatch", "over_scoped",
			"repo:read → granted: not reported", "| skipped: revoke_previous |",
		} {
			if !strings.Contains(md, want) {
				t.Errorf("markdown lacks %q", want)
			}
		}

		// HTML: one self-contained page with three charts.
		opts.Format = report.FormatHTML
		opts.RunbookBaseURL = "https://git.example.com/ops/blob/main/"
		page := string(write(t, st, opts))
		checkHTML(t, page)
		for _, want := range []string{
			`<a href="https://git.example.com/ops/blob/main/runbooks/generated.md#rotation">`, "runbook changed since this run",
			`class="badge f-over_scoped"`, "key leaked in INC-1234", "@media print", ">not reported</span>", "skipped: revoke_previous</span>",
		} {
			if !strings.Contains(page, want) {
				t.Errorf("HTML lacks %q", want)
			}
		}

		// A broken chain shows in every format.
		exec("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2")
		opts.Format = report.FormatJSON
		p = decodeJSON(t, schema, write(t, st, opts))
		if p.AuditChain["ok"] != false || p.AuditChain["problem"].(map[string]any)["seq"] != float64(2) {
			t.Errorf("tampered audit chain: %v", p.AuditChain)
		}
		opts.Format = report.FormatMarkdown
		if md := string(write(t, st, opts)); !strings.Contains(md, "BROKEN: modified event at seq 2") {
			t.Error("markdown does not show the broken chain")
		}
	})
}

// checkHTML checks that a page is complete, self-contained and balanced.
func checkHTML(t *testing.T, page string) {
	t.Helper()
	if !strings.HasPrefix(page, "<!DOCTYPE html>") || !strings.HasSuffix(page, "</html>\n") {
		t.Error("HTML page is incomplete")
	}
	for _, banned := range []string{"<script", "<link", "<img", "<iframe", " src=", "url(", "@import"} {
		if strings.Contains(page, banned) {
			t.Errorf("HTML page contains %q: it must be self-contained", banned)
		}
	}
	if n := strings.Count(page, "<figure>"); n != 3 {
		t.Errorf("HTML has %d charts, want 3", n)
	}
	for _, tag := range []string{"table", "tr", "td", "svg", "section", "figure", "span", "a"} {
		open := strings.Count(page, "<"+tag+">") + strings.Count(page, "<"+tag+" ")
		closed := strings.Count(page, "</"+tag+">")
		if open != closed {
			t.Errorf("HTML: %d <%s> opened, %d closed", open, tag, closed)
		}
	}
}

func TestSelector(t *testing.T) {
	t.Parallel()
	schema := loadSchema(t)
	eachDialect(t, func(t *testing.T, st store.Store, _ func(string)) {
		s := seed(t, st)
		p := decodeJSON(t, schema, write(t, st, report.Options{
			Format: report.FormatJSON, Now: now, RunbookDir: s.dir, Selector: map[string]string{"team": "platform"},
		}))
		var ids []string
		for _, c := range p.Credentials {
			ids = append(ids, c.ID)
		}
		if !slices.Equal(ids, []string{"healthy-1", "old-2"}) {
			t.Errorf("selected credentials %v", ids)
		}
		for _, r := range p.Runs {
			if r.Credential != "healthy-1" && r.Credential != "old-2" {
				t.Errorf("run %s of unselected credential %s", r.ID, r.Credential)
			}
		}
		if len(p.Runs) != 2 || len(p.Emergencies) != 1 || p.Report["selector"] != "team=platform" {
			t.Errorf("runs %d, emergencies %d, selector %v", len(p.Runs), len(p.Emergencies), p.Report["selector"])
		}
	})
}

func TestBadOptions(t *testing.T) {
	t.Parallel()
	for name, opts := range map[string]report.Options{
		"format":       {Format: "pdf"},
		"empty period": {Since: now, Until: now},
	} {
		_, err := report.Write(context.Background(), nil, &bytes.Buffer{}, opts)
		if !errors.Is(err, report.ErrBadOptions) {
			t.Errorf("%s: error %v, want ErrBadOptions", name, err)
		}
	}
}

func TestEmptyDatabase(t *testing.T) {
	t.Parallel()
	schema := loadSchema(t)
	eachDialect(t, func(t *testing.T, st store.Store, _ func(string)) {
		for _, f := range report.Formats {
			out := write(t, st, report.Options{Format: f, Now: now})
			switch f {
			case report.FormatJSON:
				decodeJSON(t, schema, out)
			case report.FormatHTML:
				checkHTML(t, string(out))
			case report.FormatCSV:
				if _, err := csv.NewReader(bytes.NewReader(out)).ReadAll(); err != nil {
					t.Errorf("empty CSV: %v", err)
				}
			case report.FormatMarkdown:
				if !strings.Contains(string(out), "No credentials.") {
					t.Error("empty markdown report does not say so")
				}
			}
		}
	})
}

func TestHumanDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[time.Duration]string{
		0: "0s", 59 * time.Second: "59s", 250 * time.Second: "4m10s", 5*time.Hour + 30*time.Minute: "5h30m",
		30 * 24 * time.Hour: "30d", 12*24*time.Hour + 7*time.Hour + 3*time.Minute: "12d7h", -time.Hour: "-1h",
	} {
		if got := report.HumanDuration(in); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", in, got, want)
		}
	}
}
