package filelock

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestAcquireExcludes(t *testing.T) {
	path := filepath.Join(t.TempDir(), "rotator.db.lock")
	first := Holder{PID: 4242, Host: "db-host", Started: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	l, err := Acquire(path, first)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("lock file: %v, mode %v; want 0600", err, fi.Mode())
	}
	// A second Acquire, even in this process (another open file), is refused
	// and names the first holder.
	_, err = Acquire(path, Self())
	var held *HeldError
	if !errors.As(err, &held) || held.Holder != first {
		t.Fatalf("second Acquire: %v, want a HeldError naming %+v", err, first)
	}
	for _, want := range []string{path, "pid 4242", "host db-host", "2026-01-02T03:04:05Z"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not name %q", err, want)
		}
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	// Released: the next holder gets it, and the file survives.
	l2, err := Acquire(path, Self())
	if err != nil {
		t.Fatalf("Acquire after Release: %v", err)
	}
	defer l2.Release()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
}

func TestUnrecordedHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.lock")
	// A holder that has locked but not written yet.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(path, Self())
	var held *HeldError
	if !errors.As(err, &held) || !strings.Contains(err.Error(), "not recorded itself") {
		t.Fatalf("Acquire = %v, want a HeldError with an unknown holder", err)
	}
}

// TestKilledHolderReleases: the lock dies with its process, SIGKILL
// included, leaving its stale record behind, which does not block.
func TestKilledHolderReleases(t *testing.T) {
	if os.Getenv("FILELOCK_HOLD") != "" {
		if _, err := Acquire(os.Getenv("FILELOCK_HOLD"), Self()); err != nil {
			os.Exit(3)
		}
		os.Stdout.WriteString("locked\n")
		time.Sleep(time.Minute)
		os.Exit(0)
	}
	path := filepath.Join(t.TempDir(), "x.lock")
	cmd := exec.Command(os.Args[0], "-test.run=^TestKilledHolderReleases$")
	cmd.Env = append(os.Environ(), "FILELOCK_HOLD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := out.Read(buf); err != nil || string(buf) != "locked\n" {
		t.Fatalf("child: %q, %v", buf, err)
	}
	_, err = Acquire(path, Self())
	var held *HeldError
	if !errors.As(err, &held) || held.Holder.PID != cmd.Process.Pid {
		t.Fatalf("while the child holds it: %v, want a HeldError naming pid %d", err, cmd.Process.Pid)
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	l, err := Acquire(path, Self())
	if err != nil {
		t.Fatalf("after the holder was killed: %v", err)
	}
	_ = l.Release()
}
