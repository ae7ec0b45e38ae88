//go:build !linux

package api

import (
	"errors"
	"net"
)

// peerCred is implemented on Linux only (SO_PEERCRED); elsewhere every
// socket request is refused.
func peerCred(net.Conn) (PeerCred, error) {
	return PeerCred{}, errors.New("reading a Unix socket peer's credentials is supported on Linux only")
}
