package gctune

import (
	"os"
	"runtime/debug"
	"testing"
)

func TestApply(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })

	t.Setenv("GOGC", "150")
	if Apply() {
		t.Fatal("Apply changed the collector although GOGC is set")
	}
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("GC percent = %d after Apply with GOGC set, want it left at 100", got)
	}
}

func TestApplyDefault(t *testing.T) {
	prev := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(prev) })
	// t.Setenv restores GOGC afterwards; Apply must see it absent, not empty.
	t.Setenv("GOGC", "")
	if err := os.Unsetenv("GOGC"); err != nil {
		t.Fatal(err)
	}
	if !Apply() {
		t.Fatal("Apply left the collector alone although GOGC is not set")
	}
	if got := debug.SetGCPercent(100); got != Percent {
		t.Fatalf("GC percent = %d after Apply, want %d", got, Percent)
	}
}
