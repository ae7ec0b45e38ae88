package scan

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRepositorySelfScan scans rotator's own repository (code, docs,
// examples, runbooks): every finding must be in a test fixture marked as
// such: below a directory whose README.md says SCAN-FIXTURES (the corpus),
// or a Go fuzz corpus entry ("go test fuzz v1", inputs the fuzzer made).
// Single lines are marked in place with rotator:ignore, which the scanner
// honours.
func TestRepositorySelfScan(t *testing.T) {
	t.Parallel()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("repository root not found at %s: %v", root, err)
	}
	res, err := Scan(context.Background(), []string{root}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files < 100 {
		t.Fatalf("scanned only %d files of the repository", res.Files)
	}
	marked := 0
	for _, f := range res.Findings {
		if markedFixture(root, f.File) {
			marked++
			continue
		}
		rel, _ := filepath.Rel(root, f.File)
		t.Errorf("%s:%d:%d: %s (%s) %s outside a marked test fixture", rel, f.Line, f.Column, f.Rule, f.Kind, f.Preview)
	}
	t.Logf("repository: %d files scanned, %d findings, all %d in marked fixtures; skipped %+v", res.Files, len(res.Findings), marked, res.Skipped)
}

func markedFixture(root, file string) bool {
	if b, err := os.ReadFile(file); err == nil && bytes.HasPrefix(b, []byte("go test fuzz v1\n")) {
		return true
	}
	for dir := filepath.Dir(file); strings.HasPrefix(dir, root) && dir != root; dir = filepath.Dir(dir) {
		if b, err := os.ReadFile(filepath.Join(dir, "README.md")); err == nil && bytes.Contains(b, []byte("SCAN-FIXTURES")) {
			return true
		}
	}
	return false
}
