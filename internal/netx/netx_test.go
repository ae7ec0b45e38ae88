package netx

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LocalHost": true, "127.0.0.1": true, "127.8.9.10": true, "::1": true, "[::1]": true,
		"": false, "0.0.0.0": false, "::": false, "10.0.0.1": false, "example.com": false, "localhost.example.com": false,
		"foo.localhost": false, "::ffff:10.0.0.1": false,
	} {
		if got := Loopback(host); got != want {
			t.Errorf("Loopback(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestLoopbackHostPort(t *testing.T) {
	for hp, want := range map[string]bool{
		"127.0.0.1:8080": true, "[::1]:443": true, "localhost:80": true, "localhost": true, "127.0.0.1": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "@": false, "": false, "10.1.2.3:5432": false,
	} {
		if got := LoopbackHostPort(hp); got != want {
			t.Errorf("LoopbackHostPort(%q) = %v, want %v", hp, got, want)
		}
	}
}

func TestTransportCause(t *testing.T) {
	cause := errors.New("connection refused")
	if got := TransportCause(&url.Error{Op: "Post", URL: "https://x/token", Err: cause}); got != cause {
		t.Errorf("TransportCause = %v", got)
	}
	if got := TransportCause(fmt.Errorf("wrapped: %w", cause)); !errors.Is(got, cause) {
		t.Errorf("TransportCause = %v", got)
	}
}

func TestTransportCauseHidesTheURL(t *testing.T) {
	// rotator:ignore: a made-up password in a URL that does not parse
	_, err := url.Parse("https://user:hunter2@mcp example.com/")
	if err == nil {
		t.Fatal("parsed")
	}
	if got := TransportCause(err).Error(); got == err.Error() || strings.Contains(got, "hunter2") {
		t.Errorf("TransportCause = %q", got)
	}
}
