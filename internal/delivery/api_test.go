package delivery_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/secret"
)

// TestAPIUnreachable: with the service down, a read over the socket or the
// URL says where it went and what to check, names the credential once
// (also through a header template), and shows no internal request URL.
func TestAPIUnreachable(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	// A socket file nobody listens on, as a killed serve leaves it.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(stale); err != nil {
		t.Fatalf("stale socket file: %v", err)
	}
	// A TCP port nothing listens on.
	tl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedURL := "http://" + tl.Addr().String()
	tl.Close()

	for _, tc := range []struct {
		name string
		opts delivery.APIOptions
		want []string
	}{
		{"missing socket", delivery.APIOptions{Socket: missing}, []string{"no socket at " + missing, "--socket " + missing}},
		{"stale socket", delivery.APIOptions{Socket: stale}, []string{"nothing listens on the socket " + stale, "stopped"}},
		{"closed port", delivery.APIOptions{URL: closedURL, Token: secret.NewString("t")}, []string{"nothing listens at " + closedURL}},
		{"password in the URL", delivery.APIOptions{URL: strings.Replace(closedURL, "//", "//u:canary-pw-5c1f@", 1), Token: secret.NewString("t")},
			[]string{"nothing listens at http://u:xxxxx@"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := delivery.NewAPI(tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			_, err = a.Read(context.Background(), delivery.ReadRequest{CredentialID: "notes-api-key"})
			if err == nil {
				t.Fatal("read from an unreachable service succeeded")
			}
			if !strings.Contains(err.Error(), `credential "notes-api-key"`) {
				t.Errorf("error does not name the credential: %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), "canary-pw-5c1f") {
				t.Errorf("error shows the URL's password: %v", err)
			}
			if strings.Contains(err.Error(), "rotator-socket") || strings.Contains(err.Error(), "/v1/") {
				t.Errorf("error shows the internal request URL: %v", err)
			}
			_, err = delivery.Expand("Bearer {notes-api-key}", func(id string) (string, error) {
				cur, err := a.Read(context.Background(), delivery.ReadRequest{CredentialID: id})
				if err != nil {
					return "", err
				}
				return cur.Value.RevealString(), nil
			})
			if n := strings.Count(err.Error(), "notes-api-key"); n != 1 {
				t.Errorf("template error names the credential %d times, want once: %v", n, err)
			}
			if errors.Is(err, delivery.ErrNotFound) {
				t.Errorf("an unreachable service reads as an unknown credential: %v", err)
			}
		})
	}
}

// TestAPIURLRefused: a consume API URL refused by NewAPI is shown without
// its password.
func TestAPIURLRefused(t *testing.T) {
	// rotator:ignore: test fixtures, URLs whose password is a canary
	for _, u := range []string{"http://u:canary-pw-5c1f@example.com", "ftp://u:canary-pw-5c1f@example.com", "http://u:canary-pw-5c1f@[::1"} {
		_, err := delivery.NewAPI(delivery.APIOptions{URL: u, Token: secret.NewString("t")})
		if err == nil {
			t.Fatalf("NewAPI(%s) accepted", u)
		}
		if strings.Contains(err.Error(), "canary-pw-5c1f") {
			t.Errorf("NewAPI's error shows the URL's password: %v", err)
		}
	}
}
