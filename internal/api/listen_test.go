package api_test

import (
	"net"
	"os"
	"path/filepath"
	"strings"
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
}
