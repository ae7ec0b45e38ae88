package api

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"strconv"
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
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("--socket %s: %w", path, err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(true)
	if err := os.Chmod(path, SocketMode); err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("--socket %s: setting mode %o: %w", path, SocketMode, err)
	}
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("--socket %s: giving it to group %s: %w", path, group, err)
		}
	}
	return ln, nil
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
