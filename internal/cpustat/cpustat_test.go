package cpustat

import (
	"os"
	"testing"
	"time"
)

// Burning CPU for a while shows in both readings of this process.
func TestReadsThisProcess(t *testing.T) {
	self0, proc0 := Self(), Process(os.Getpid())
	x := 0
	for start := time.Now(); time.Since(start) < 200*time.Millisecond; {
		x++
	}
	_ = x
	if d := Self() - self0; d < 50*time.Millisecond {
		t.Errorf("Self grew by %v over 200 ms of spinning", d)
	}
	if d := Process(os.Getpid()) - proc0; d < 50*time.Millisecond {
		t.Errorf("Process grew by %v over 200 ms of spinning", d)
	}
	if Process(-1) != 0 {
		t.Error("Process of no process is not 0")
	}
}
