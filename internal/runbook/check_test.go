package runbook_test

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/runbook"
)

// TestCheck covers every problem runbooks check (and doctor) report.
func TestCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	rb := filepath.Join(dir, "runbooks")
	if err := os.MkdirAll(rb, 0o755); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"good.md":      "---\nid: good\nversion: 1\nowner: platform\nreviewed: 2026-03-01\n---\n# Good\n## Rotation\n",
		"stale.md":     "---\nid: stale\nversion: 1\nowner: platform\nreviewed: 2025-01-01\n---\n# Stale\n## Rotation\n",
		"partial.md":   "---\nid: partial\nreviewed: someday\n---\n# Partial\n",
		"bare.md":      "# No front matter\n",
		"duplicate.md": "---\nid: good\nversion: 1\nowner: x\nreviewed: 2026-03-01\n---\n",
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(rb, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Date(2026, 3, 31, 0, 0, 0, 0, time.UTC)
	creds := []runbook.CredentialRef{
		{ID: "ok", Ref: "runbooks/good.md#rotation"},
		{ID: "no-anchor", Ref: "runbooks/good.md#nope"},
		{ID: "no-file", Ref: "runbooks/missing.md#rotation"},
		{ID: "none", Ref: ""},
	}
	res, err := runbook.Check(creds, dir, []string{rb}, 180*24*time.Hour, now)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Join(res.Problems, "\n")
	for _, want := range []string{
		"credential no-anchor: runbook runbooks/good.md#nope",
		"credential no-file: runbook runbooks/missing.md#rotation",
		"credential none links no runbook",
		"stale.md: last reviewed 2025-01-01",
		"partial.md: front matter lacks version, owner",
		`partial.md: reviewed "someday" is not a date`,
		"bare.md: no front matter",
		`duplicate.md: id "good" is also the id of`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("problems lack %q:\n%s", want, text)
		}
	}
	if len(res.Problems) != 8 {
		t.Errorf("%d problems, want 8:\n%s", len(res.Problems), text)
	}
	for _, l := range res.Credentials {
		if (l.Credential == "ok") != (l.Problem == nil) {
			t.Errorf("credential %s: problem %v", l.Credential, l.Problem)
		}
	}
	if len(res.Runbooks) != 5 {
		t.Errorf("%d runbooks checked, want 5", len(res.Runbooks))
	}
	i := slices.IndexFunc(res.Runbooks, func(r runbook.FileCheck) bool { return r.ID == "stale" })
	if i < 0 || res.Runbooks[i].AgeDays == nil || *res.Runbooks[i].AgeDays != 454 {
		t.Errorf("stale runbook: %+v", res.Runbooks[i])
	}

	// Everything in order: no problem.
	res, err = runbook.Check(creds[:1], dir, nil, 180*24*time.Hour, now)
	if err != nil || len(res.Problems) != 0 {
		t.Errorf("clean check: %v, %v", res.Problems, err)
	}
}
