package api_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/rotatorhq/rotator/internal/api"
)

func TestListenSocket(t *testing.T) {
	t.Parallel()
	dir, err := os.MkdirTemp("", "rtrls")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "api.sock")
	ln, err := api.ListenSocket(path, "")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != api.SocketMode {
		t.Errorf("socket mode %v, %v; want %v", fi.Mode().Perm(), err, api.SocketMode)
	}
	// A second listener while the first serves: refused.
	first := ln
	go func() {
		for {
			c, err := first.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	if _, err := api.ListenSocket(path, ""); err == nil || !strings.Contains(err.Error(), "another process serves") {
		t.Errorf("second listener: %v", err)
	}
	_ = first.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Errorf("the socket file outlived its listener: %v", err)
	}
	// A stale socket file (its listener gone without unlinking) is replaced.
	stale, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	_ = stale.Close()
	ln, err = api.ListenSocket(path, "")
	if err != nil {
		t.Fatalf("over a stale socket: %v", err)
	}
	_ = ln.Close()
	// A regular file is never removed.
	if err := os.WriteFile(path, []byte("data"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := api.ListenSocket(path, ""); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("over a regular file: %v", err)
	}
	if _, err := api.ListenSocket(filepath.Join(dir, "b.sock"), "no-such-group-xyz"); err == nil || !strings.Contains(err.Error(), "no group") {
		t.Errorf("unknown group: %v", err)
	}
	// A path that fits a socket but leaves no room for the private
	// directory it is first bound in: bound in place, with the same mode.
	long := filepath.Join(dir, strings.Repeat("d", 100-len(dir)-len("/x.sock")))
	if err := os.Mkdir(long, 0o700); err != nil {
		t.Fatal(err)
	}
	lpath := filepath.Join(long, "x.sock")
	ln, err = api.ListenSocket(lpath, "")
	if err != nil {
		t.Fatalf("a %d-byte path: %v", len(lpath), err)
	}
	if fi, err := os.Stat(lpath); err != nil || fi.Mode().Perm() != api.SocketMode {
		t.Errorf("%d-byte path: socket mode %v, %v; want %v", len(lpath), fi.Mode().Perm(), err, api.SocketMode)
	}
	_ = ln.Close()
	if entries, err := os.ReadDir(long); err != nil || len(entries) != 0 {
		t.Errorf("left beside a socket with a long path: %v, %v", entries, err)
	}
}

// TestListenSocketNeverWider: the socket never appears at its path with a
// wider mode than SocketMode, even under umask 000 (where a socket bound
// in place is 0777 until it is chmodded). A watcher polls the path while
// sockets come and go; every mode it sees must be SocketMode. Not
// parallel: the umask is the process's.
func TestListenSocketNeverWider(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	dir, err := os.MkdirTemp("", "rtrls")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "api.sock")

	stop := make(chan struct{})
	seen := make(chan os.FileMode, 1)
	var looks atomic.Int64
	go func() {
		defer close(seen)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if fi, err := os.Lstat(path); err == nil {
				looks.Add(1)
				if m := fi.Mode().Perm(); m != api.SocketMode {
					seen <- m
					return
				}
			}
		}
	}()
	for range 300 {
		ln, err := api.ListenSocket(path, "")
		if err != nil {
			t.Fatal(err)
		}
		if got := ln.Addr().String(); got != path {
			t.Errorf("Addr() = %s; want %s", got, path)
		}
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatalf("connecting to the socket: %v", err)
		}
		a, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		_, _ = a.Close(), c.Close()
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(path); !os.IsNotExist(err) {
			t.Fatalf("the socket file outlived its listener: %v", err)
		}
	}
	close(stop)
	if m, ok := <-seen; ok {
		t.Fatalf("the socket was at %s with mode %v before it had %v", path, m, api.SocketMode)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 0 {
		t.Errorf("left beside the socket: %v, %v", entries, err)
	}
	t.Logf("the watcher saw the socket %d times, always with mode %v", looks.Load(), api.SocketMode)
}
