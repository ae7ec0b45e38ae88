package oauth2cc

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"

	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/internal/remote"
)

// probeGrant is a grant type no authorization server supports: a token
// request with it mints nothing.
const probeGrant = "urn:rotatorhq:params:oauth:grant-type:probe"

// Probe implements providers.Prober without minting a token: it sends the
// token endpoint a token request for a grant type no server supports,
// authenticated as a real one would be. An answer proves that the endpoint
// is reachable and speaks OAuth; invalid_client proves the client
// credentials wrong. Any other OAuth error does not prove them right, since
// many servers check the grant type before the client: that is reported as
// unproven (only a token request, which mints, proves it).
func (p *Provider) Probe(ctx context.Context, _ providers.ProbeRequest) (providers.ProbeResponse, error) {
	cfg := p.cfg
	form := url.Values{"grant_type": {probeGrant}}
	resp, body, err := p.post(ctx, cfg, "token", cfg.TokenURL, form, cfg.ClientID, cfg.ClientSecret)
	if err != nil {
		return providers.ProbeResponse{}, providers.NewProbeError(p.clean(err, cfg.ClientSecret),
			"check that token_url is right and the authorization server is reachable from this host (DNS, proxy, TLS)")
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return providers.ProbeResponse{
			Checked:  []string{fmt.Sprintf("token endpoint %s answered HTTP %d to an authenticated request for client %s", cfg.TokenURL, resp.StatusCode, cfg.ClientID)},
			Unproven: []string{"that it issues client_credentials tokens with the declared scope (proven by the first rotation)"},
		}, nil
	}
	var oe *OAuthError
	if !errors.As(remote.EndpointError("token", cfg.TokenURL, resp, body, errorHints), &oe) {
		return providers.ProbeResponse{}, fmt.Errorf("token endpoint %s: unexpected answer", cfg.TokenURL)
	}
	switch {
	case oe.Code == "invalid_client" || (oe.Code == "" && resp.StatusCode == http.StatusUnauthorized):
		return providers.ProbeResponse{}, providers.NewProbeError(fmt.Errorf("%w", oe),
			"correct client_id, the secret client_secret's reference points to, or auth_style")
	case oe.Code == "":
		return providers.ProbeResponse{}, providers.NewProbeError(
			fmt.Errorf("token endpoint %s answered HTTP %d without an OAuth error: it does not look like a token endpoint", cfg.TokenURL, resp.StatusCode),
			"check token_url (the authorization server's metadata names it: token_endpoint)")
	}
	return providers.ProbeResponse{
		Checked: []string{fmt.Sprintf("token endpoint %s is reachable and speaks OAuth (it answered a probe grant with %s, HTTP %d, without minting)",
			cfg.TokenURL, oe.Code, resp.StatusCode)},
		Unproven: []string{fmt.Sprintf("that client %s's secret is accepted: the server may check the grant before the client, and only a token request, which mints a token, proves it (the first rotation does)", cfg.ClientID)},
	}, nil
}

var _ providers.Prober = (*Provider)(nil)
