package webhook

import (
	"encoding/base64"
	"net/url"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
)

// SecretPrefix starts a Standard Webhooks signing secret: whsec_ and the
// base64 of the key.
const SecretPrefix = "whsec_"

// DefaultTimeout bounds one request when `timeout` is not set.
const DefaultTimeout = 10 * time.Second

// Config is the configuration of a webhook receiver.
type Config struct {
	// URL receives the POST. It may be a reference (a URL holding a token).
	URL secret.Value
	// Secret is the signing secret, whsec_ and base64; always a reference.
	Secret secret.Value
	// Timeout bounds one request.
	Timeout time.Duration
}

// parse reads settings. Before resolution (validate) secret fields hold
// their reference; after it, their value, which is then checked.
func parse(s settings.Map, resolved bool) (Config, settings.Errors) {
	r := settings.NewReader(s)
	var c Config
	if !r.Has("url") {
		r.Fail("url", "is required: the https URL that receives the events")
	}
	c.URL = r.Secret("url")
	if !r.Has("secret") {
		r.Fail("secret", "is required: a reference such as ${file:/run/secrets/webhook} to the signing secret (whsec_ and base64)")
	}
	c.Secret = r.Secret("secret")
	c.Timeout = r.Duration("timeout", DefaultTimeout)
	r.Unknown()
	raw := func(v secret.Value) string { return string(v.Reveal()) }
	if u := raw(c.URL); u != "" && !secret.IsRef(u) {
		if pu, err := url.Parse(u); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
			r.Fail("url", "must be an http(s) URL or a reference to one")
		}
	}
	if sec := raw(c.Secret); sec != "" {
		switch {
		case !resolved && !secret.IsRef(sec):
			r.Fail("secret", "must be a reference such as ${env:WEBHOOK_SECRET}, never the secret itself")
		case resolved:
			if _, err := key(c.Secret); err != nil {
				r.Fail("secret", "%s", err.Error())
			}
		}
	}
	return c, r.Errors()
}

// key decodes the signing key of a whsec_ secret.
func key(sec secret.Value) ([]byte, error) {
	s := strings.TrimSpace(string(sec.Reveal()))
	b64, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return nil, errSecretForm
	}
	k, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(k) < 24 || len(k) > 64 {
		return nil, errSecretForm
	}
	return k, nil
}

type formError string

func (e formError) Error() string { return string(e) }

const errSecretForm = formError("the referenced signing secret must be whsec_ followed by the base64 of 24 to 64 random bytes (Standard Webhooks)")
