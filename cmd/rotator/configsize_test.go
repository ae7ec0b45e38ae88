package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestMaxConfigSize checks that apply, serve and runbooks check reject a
// file over --max-config-size before parsing it, with an error naming the
// file, its size and the flag (exit 2), and read it once the flag allows.
func TestMaxConfigSize(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "sqlite")
	c.copyRunbooks(t)
	quickstart := readFile(t, quickstartPath)
	// Pad the quickstart with comments to just over 16 MiB.
	var b strings.Builder
	b.WriteString(quickstart)
	line := "# " + strings.Repeat("padding ", 12) + "\n"
	for b.Len() <= 16<<20 {
		b.WriteString(line)
	}
	big := c.path("big.yaml")
	writeFile(t, big, b.String())
	size := fmt.Sprintf("(%d bytes)", b.Len())

	for _, args := range [][]string{
		{"apply", "-f", "big.yaml"},
		{"apply", "-f", "big.yaml", "--max-config-size", "1MiB"},
		{"serve", "-f", "big.yaml", "--listen", "127.0.0.1:0"},
		{"runbooks", "check", "-f", "big.yaml"},
	} {
		r := c.must(t, 2, args...)
		for _, want := range []string{"big.yaml is 16.0 MiB " + size, "over the", "--max-config-size 32MiB"} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%s: stderr does not contain %q", strings.Join(args, " "), want)
			}
		}
	}
	if fileExists(c.path("rotator.db")) {
		t.Error("a command opened the database for a file it refused")
	}
	r := c.must(t, 0, "apply", "-f", "big.yaml", "--max-config-size", "17MiB")
	if !strings.Contains(r.stdout, "created") {
		t.Errorf("apply with --max-config-size 17MiB:\n%s", r)
	}
	c.must(t, 2, "apply", "-f", "big.yaml", "--max-config-size", "lots")
}
