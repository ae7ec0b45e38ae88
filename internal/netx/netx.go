// Package netx holds the one definition of "this machine's loopback
// interface" that listeners, URL checks and request checks share, and the
// cause of a URL error without the URL.
package netx

import (
	"errors"
	"net"
	"net/url"
	"strings"
)

// TransportCause strips the *url.Error wrapper of an HTTP client or
// url.Parse error: its text repeats the method and the whole URL, which the
// caller's message names already, or which may hold a password.
func TransportCause(err error) error {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		return ue.Err
	}
	return err
}

// Loopback reports whether host names the loopback interface: "localhost"
// or a loopback IP (127.0.0.0/8, ::1). host is a bare name or address, as
// url.URL.Hostname returns it; brackets around an IPv6 address are
// accepted.
func Loopback(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// LoopbackHostPort is Loopback for "host:port" (a listen address, a
// request's RemoteAddr or Host); a value without a port is read as a host.
// An empty value, ":8080" and unix-socket peers ("@") are not loopback.
func LoopbackHostPort(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	return Loopback(host)
}
