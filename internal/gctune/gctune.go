// Package gctune sets the Go garbage collector for rotator's long-running
// work (serve, and rotate when it executes runs itself).
//
// A rotation allocates briefly and keeps little: the live heap of a service
// with 100,000 credentials is some tens of megabytes. At Go's default
// (GOGC=100) the collector runs often against that small heap and took
// about 15% of rotator's CPU per rotation, CPU that the database on the same
// machine needs. At 400 the heap may grow to five times the live heap
// between collections, which is still small; see docs/benchmarks.md.
package gctune

import (
	"os"
	"runtime/debug"
)

// Percent is the GOGC value Apply sets.
const Percent = 400

// Apply sets GOGC to Percent unless the operator set GOGC in the
// environment, which always wins (as does GOMEMLIMIT, which Apply never
// touches). It reports whether it changed the setting.
func Apply() bool {
	if _, set := os.LookupEnv("GOGC"); set {
		return false
	}
	debug.SetGCPercent(Percent)
	return true
}
