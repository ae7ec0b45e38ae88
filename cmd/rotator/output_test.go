package main

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// failAfter accepts n bytes, then fails every write, as a full disk would.
type failAfter struct {
	n   int
	buf bytes.Buffer
}

var errDiskFull = errors.New("no space left on device")

func (f *failAfter) Write(p []byte) (int, error) {
	if f.buf.Len()+len(p) > f.n {
		return 0, errDiskFull
	}
	return f.buf.Write(p)
}

func TestLostOutputFailsTheCommand(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"version"}, &failAfter{n: 1 << 20}, &stderr); code != exitOK {
		t.Fatalf("version with a working stdout: exit %d (%s)", code, stderr.String())
	}
	stderr.Reset()
	code := run([]string{"version"}, &failAfter{n: 3}, &stderr)
	if code != exitFailure {
		t.Fatalf("version with a failing stdout: exit %d, want %d", code, exitFailure)
	}
	if !strings.Contains(stderr.String(), "writing the output") || !strings.Contains(stderr.String(), errDiskFull.Error()) {
		t.Errorf("stderr %q, want it to say the output could not be written, and why", stderr.String())
	}

	// Help is written by cobra, which ignores write errors: the lost output
	// is still reported.
	stderr.Reset()
	if code := run([]string{"--help"}, &failAfter{n: 10}, &stderr); code != exitFailure || !strings.Contains(stderr.String(), "writing the output") {
		t.Errorf("--help with a failing stdout: exit %d, stderr %q; want %d and the write error", code, stderr.String(), exitFailure)
	}
}
