package slack

import (
	"net/url"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
)

// DefaultTimeout bounds one request when `timeout` is not set.
const DefaultTimeout = 10 * time.Second

// Config is the configuration of a Slack receiver.
type Config struct {
	// URL is the incoming-webhook URL. It is a secret (whoever has it can
	// post), so configuration gives it by reference.
	URL secret.Value
	// Username overrides the app's name, where the app allows it.
	Username string
	// Timeout bounds one request.
	Timeout time.Duration
}

func parse(s settings.Map, resolved bool) (Config, settings.Errors) {
	r := settings.NewReader(s)
	var c Config
	if !r.Has("url") {
		r.Fail("url", "is required: a reference such as ${env:SLACK_WEBHOOK_URL} to the incoming-webhook URL")
	}
	c.URL = r.Secret("url")
	c.Username = r.String("username", "")
	c.Timeout = r.Duration("timeout", DefaultTimeout)
	r.Unknown()
	if u := string(c.URL.Reveal()); u != "" {
		switch {
		case !resolved && !secret.IsRef(u):
			r.Fail("url", "must be a reference such as ${env:SLACK_WEBHOOK_URL}: an incoming-webhook URL is a secret")
		case resolved:
			if pu, err := url.Parse(u); err != nil || (pu.Scheme != "https" && pu.Scheme != "http") || pu.Host == "" {
				r.Fail("url", "the referenced value must be an https URL (https://hooks.slack.com/services/...)")
			}
		}
	}
	return c, r.Errors()
}
