package oauth2cc_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/providers"
)

// TestProbe: against the authorization server, the right client proves the
// endpoint reachable (its secret stays unproven) and mints nothing; a
// wrong secret is broken (invalid_client) with advice; an unreachable
// endpoint is broken. No secret appears in any message.
func TestProbe(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	probe := func(extra map[string]any) (providers.ProbeResponse, error) {
		p := f.provider(t, nil, extra)
		return p.(providers.Prober).Probe(t.Context(), providers.ProbeRequest{})
	}
	res, err := probe(nil)
	if err != nil || !strings.Contains(strings.Join(res.Checked, " "), "speaks OAuth") || len(res.Unproven) == 0 {
		t.Errorf("right client: %+v, %v", res, err)
	}
	f.as.mu.Lock()
	minted := len(f.as.tokens)
	f.as.mu.Unlock()
	if minted != 0 {
		t.Errorf("the probe minted %d token(s)", minted)
	}
	wrong := canary("wrong-")
	_, err = probe(map[string]any{"client_secret": wrong})
	var pe *providers.ProbeError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "invalid_client") || !strings.Contains(pe.Remedy(), "client_secret") {
		t.Errorf("wrong secret: %v", err)
	}
	_, err = probe(map[string]any{"token_url": "http://127.0.0.1:1/token"})
	if !errors.As(err, &pe) || !strings.Contains(pe.Remedy(), "reachable") {
		t.Errorf("unreachable endpoint: %v", err)
	}
	for _, s := range []string{f.secret.RevealString(), wrong.RevealString()} {
		if err != nil && strings.Contains(err.Error(), s) {
			t.Errorf("an error shows a secret: %v", err)
		}
	}
}
