package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestReportFlags: -o is the format and --out the file, as everywhere else;
// the old --format still works, with a warning on stderr only.
func TestReportFlags(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "sqlite")
	c.must(t, 0, "apply", "-f", quickstartPath)

	r := c.must(t, 0, "report")
	if !strings.HasPrefix(r.stdout, "# ") {
		t.Errorf("report: default is not Markdown on stdout:\n%.200s", r.stdout)
	}
	r = c.must(t, 0, "report", "-o", "json", "--out", "q1.json")
	if r.stdout != "" || !strings.Contains(r.stderr, "Wrote q1.json") {
		t.Errorf("report -o json --out q1.json:\n%s", r)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(readFile(t, c.path("q1.json"))), &doc); err != nil || doc["report"] == nil {
		t.Errorf("q1.json is not the JSON report: %v", err)
	}
	r = c.must(t, 0, "report", "--format", "csv")
	if !strings.Contains(r.stderr, "--format is deprecated") || strings.Contains(r.stdout, "deprecated") {
		t.Errorf("report --format csv: the warning belongs on stderr only:\n%s", r)
	}
	if first := strings.SplitN(r.stdout, "\n", 2)[0]; !strings.Contains(first, ",") {
		t.Errorf("report --format csv: not CSV:\n%.200s", r.stdout)
	}
	c.must(t, 0, "report", "--format", "html", "-o", "html", "--out", "r.html")
	if !strings.Contains(readFile(t, c.path("r.html")), "<html") {
		t.Error("r.html is not HTML")
	}
}
