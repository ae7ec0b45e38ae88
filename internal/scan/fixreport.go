package scan

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"
)

// FixReport is the outcome of FixAll.
type FixReport struct {
	Fixed []*FixResult
	// Left are findings no file rewrite handles (secrets outside MCP client
	// configurations, tool inputs, configurations of other clients).
	Left []string
}

// FixAll rewrites every MCP client configuration that holds a finding of
// the result (see Fix) and lists what is left.
func FixAll(res *Result, now time.Time) (*FixReport, error) {
	rep := &FixReport{}
	files := map[string]bool{}
	for _, f := range res.Findings {
		if f.Kind == KindMCPConfig {
			files[f.File] = true
		}
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	notFixable := map[string]string{}
	for _, n := range names {
		r, err := Fix(n, now)
		if errors.Is(err, ErrNotFixable) {
			notFixable[n] = err.Error()
			continue
		}
		if err != nil {
			return rep, err
		}
		rep.Fixed = append(rep.Fixed, r)
	}
	for _, f := range res.Findings {
		switch {
		case f.Kind == KindMCPConfig && notFixable[f.File] == "":
			continue // handled by Fix (its NotFixed says what was not)
		case f.Kind == KindMCPConfig:
			rep.Left = append(rep.Left, fmt.Sprintf("%s:%d:%d: %s %s: --fix rewrites Claude Desktop, Claude Code, VS Code and Cursor JSON; use 'rotator import %s' for the rotator configuration and replace the literal by hand",
				f.File, f.Line, f.Column, f.Rule, f.Preview, f.File))
		default:
			rep.Left = append(rep.Left, fmt.Sprintf("%s:%d:%d: %s %s: %s", f.File, f.Line, f.Column, f.Rule, f.Preview, f.Fix))
		}
	}
	return rep, nil
}

// Remaining counts what FixAll did not fix.
func (r *FixReport) Remaining() int {
	n := len(r.Left)
	for _, f := range r.Fixed {
		n += len(f.NotFixed)
	}
	return n
}

// Write prints the report: per file the changes, the rotator
// configuration (references only) and what the user must still do; then
// what is left.
func (r *FixReport) Write(w io.Writer) error {
	bw := bufio.NewWriter(w)
	for _, f := range r.Fixed {
		if len(f.Changes) == 0 && len(f.NotFixed) == 0 {
			continue
		}
		fmt.Fprintf(bw, "== %s (backup: %s)\n", f.File, f.Backup)
		for _, c := range f.Changes {
			fmt.Fprintf(bw, "  changed: %s\n", c)
		}
		for _, c := range f.NotFixed {
			fmt.Fprintf(bw, "  NOT fixed: %s\n", c)
		}
		if len(f.Config) > 0 {
			fmt.Fprintf(bw, "\n-- rotator configuration for these credentials (save as rotator.yaml; references only):\n%s\n", f.Config)
		}
		fmt.Fprintf(bw, "-- still to do:\n")
		for i, t := range f.Todo {
			fmt.Fprintf(bw, "  %d. %s\n", i+1, t)
		}
		fmt.Fprintln(bw)
	}
	if len(r.Left) > 0 {
		fmt.Fprintf(bw, "== not rewritten by --fix (%d):\n", len(r.Left))
		for _, l := range r.Left {
			fmt.Fprintf(bw, "  %s\n", l)
		}
	}
	fmt.Fprintf(bw, "%d file(s) rewritten, %d finding(s) left to fix by hand\n", len(r.Fixed), r.Remaining())
	return bw.Flush()
}
