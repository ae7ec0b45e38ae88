package api

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/rotatorhq/rotator/internal/netx"
)

// SocketMode is the mode of the consume API's socket: its owner and group
// may connect, nobody else. Which peer may read what is decided per
// request by the delivery: rules.
const SocketMode fs.FileMode = 0o660

// ListenSocket listens on a Unix socket at path with SocketMode, owned by
// group when it is not empty (a name or a gid). A socket file left by a
// process that is gone is replaced; one that answers is an error.
func ListenSocket(path, group string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("--socket %s: the path exists and is not a socket; remove it or choose another path", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			_ = c.Close()
			return nil, fmt.Errorf("--socket %s: another process serves on this socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("--socket %s: removing the stale socket: %w", path, err)
		}
	}
	gid := -1
	if group != "" {
		g, err := lookupGroup(group)
		if err != nil {
			return nil, fmt.Errorf("--socket-group %s: %w", group, err)
		}
		gid = g
	}
	// Bound at path, the socket would exist with the mode the process's
	// umask leaves of 0777 until the chmod below, and anyone that mode lets
	// in (everyone, under umask 000) could connect meanwhile. So it is
	// bound in a new private directory beside path, given its mode and
	// group there, and only then renamed into place. A path too long for
	// that detour (see maxSocketPath) is bound in place.
	bind := path
	if tmpDir, err := os.MkdirTemp(filepath.Dir(path), ".rs"); err == nil {
		defer os.RemoveAll(tmpDir)
		if t := filepath.Join(tmpDir, "s"); len(t) < maxSocketPath {
			bind = t
		}
	}
	ln, err := net.Listen("unix", bind)
	if err != nil {
		return nil, fmt.Errorf("--socket %s: %w", path, err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	// fail closes the listener and removes the socket file it bound (the
	// private directory goes with the deferred RemoveAll).
	fail := func(err error) (net.Listener, error) {
		_ = ul.Close()
		if bind == path {
			_ = os.Remove(path)
		}
		return nil, err
	}
	if err := os.Chmod(bind, SocketMode); err != nil {
		return fail(fmt.Errorf("--socket %s: setting mode %o: %w", path, SocketMode, err))
	}
	if gid >= 0 {
		if err := os.Chown(bind, -1, gid); err != nil {
			return fail(fmt.Errorf("--socket %s: giving it to group %s: %w", path, group, err))
		}
	}
	if bind != path {
		if err := os.Rename(bind, path); err != nil {
			return fail(fmt.Errorf("--socket %s: %w", path, err))
		}
	}
	return &socketListener{UnixListener: ul, path: path}, nil
}

// maxSocketPath bounds the length of a Unix socket's path (sun_path holds
// 108 bytes with the terminating NUL on Linux, 104 on BSDs and macOS).
const maxSocketPath = 104

// socketListener is the consume API's listener: its address is the path
// clients connect to, and closing it removes the socket file there.
type socketListener struct {
	*net.UnixListener
	path string
	once sync.Once
}

func (l *socketListener) Addr() net.Addr { return &net.UnixAddr{Name: l.path, Net: "unix"} }

func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	l.once.Do(func() { _ = os.Remove(l.path) })
	return err
}

func lookupGroup(s string) (int, error) {
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return int(n), nil
	}
	g, err := user.LookupGroup(s)
	if err != nil {
		return 0, fmt.Errorf("no group %q on this host", s)
	}
	n, err := strconv.Atoi(g.Gid)
	return n, err
}

// LoadTLS reads a certificate and its key from files (PEM).
func LoadTLS(certFile, keyFile string) (*tls.Config, error) {
	if certFile == "" || keyFile == "" {
		return nil, errors.New("give both --tls-cert and --tls-key")
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		// The error names the files and what is wrong; it never holds key
		// material.
		return nil, fmt.Errorf("--tls-cert %s / --tls-key %s: %w", certFile, keyFile, err)
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

// LoopbackAddr reports whether a listen address binds loopback only
// (127.0.0.1:8080, [::1]:8080, localhost:8080); ":8080" and 0.0.0.0 do not.
func LoopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	return err == nil && netx.Loopback(host)
}
