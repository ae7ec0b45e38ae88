// Package filelock takes an exclusive advisory lock on a file (flock(2))
// and records in it who holds it, so that a second process can say which
// one is in its way. The kernel drops the lock with the holder's last file
// descriptor, so a holder that crashes or is killed (SIGKILL included)
// never blocks the next one.
package filelock

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
	"time"
)

// Holder describes the process holding a lock; it is written into the
// lock file as JSON.
type Holder struct {
	PID     int       `json:"pid"`
	Host    string    `json:"host"`
	Started time.Time `json:"started"`
}

// Self describes this process, started now.
func Self() Holder {
	host, _ := os.Hostname()
	return Holder{PID: os.Getpid(), Host: host, Started: time.Now().UTC().Truncate(time.Second)}
}

// String says who the holder is: "pid 123 on host h, started 2026-01-02T03:04:05Z".
func (h Holder) String() string {
	if h.PID == 0 {
		return "a process that has not recorded itself yet (starting or stopping)"
	}
	s := fmt.Sprintf("pid %d", h.PID)
	if h.Host != "" {
		s += " on host " + h.Host
	}
	if !h.Started.IsZero() {
		s += ", started " + h.Started.UTC().Format(time.RFC3339)
	}
	return s
}

// HeldError is returned by Acquire when the lock is held by another
// process, or by another Acquire of this one.
type HeldError struct {
	// Path is the lock file.
	Path string
	// Holder is what the holder recorded (zero if it had not yet).
	Holder Holder
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("%s is locked by %s", e.Path, e.Holder)
}

// Lock is a held lock.
type Lock struct {
	f *os.File
}

// Acquire locks path (creating it, mode 0600, if needed) without waiting
// and writes h into it. If another holder has it, the error is a
// *HeldError naming that holder. The lock lasts until Release or the end
// of the process.
func Acquire(path string, h Holder) (*Lock, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			held := &HeldError{Path: path}
			if b, rerr := io.ReadAll(io.LimitReader(f, 4096)); rerr == nil {
				_ = json.Unmarshal(b, &held.Holder) // empty or partial: holder unknown
			}
			return nil, held
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	b, _ := json.Marshal(h) // plain fields: cannot fail
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(append(b, '\n'), 0)
	}
	if err != nil {
		_ = f.Close() // drops the lock
		return nil, fmt.Errorf("lock %s: recording the holder: %w", path, err)
	}
	return &Lock{f: f}, nil
}

// Release clears the holder record and drops the lock. The file stays:
// removing it would let two processes lock two different files of the same
// name.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	_ = l.f.Truncate(0)
	err := l.f.Close() // drops the lock
	l.f = nil
	return err
}
