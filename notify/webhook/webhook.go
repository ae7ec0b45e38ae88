// Package webhook delivers notifications as JSON POSTs signed per the
// Standard Webhooks specification (https://www.standardwebhooks.com/):
// headers webhook-id (the delivery id, the same on every retry),
// webhook-timestamp (Unix seconds) and webhook-signature
// ("v1," and the base64 HMAC-SHA256 of "id.timestamp.body" under the key of
// the whsec_ secret), so receivers verify with the existing libraries.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"

	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/notify"
)

// Type is the receiver type name in configuration.
const Type = "webhook"

// Body is the JSON a webhook receives: the message and the schema version.
type Body struct {
	SchemaVersion int `json:"schema_version"`
	notify.Message
}

// Receiver posts signed messages.
type Receiver struct {
	name   string
	cfg    Config
	key    []byte
	client *http.Client
	req    notify.NewRequest
}

// Factory returns the webhook factory for notify/registry.
func Factory() notify.Factory {
	return notify.Factory{
		Validate: func(s settings.Map) settings.Errors { _, errs := parse(s, false); return errs },
		New:      New,
	}
}

// New builds a receiver from resolved settings.
func New(req notify.NewRequest) (notify.Receiver, error) {
	cfg, errs := parse(req.Settings, true)
	if len(errs) > 0 {
		return nil, notify.SettingsError(req.Name, errs)
	}
	k, err := key(cfg.Secret)
	if err != nil {
		return nil, fmt.Errorf("receiver %s: secret: %w", req.Name, err)
	}
	client := req.HTTPClient
	if client == nil {
		client = &http.Client{Timeout: cfg.Timeout}
	}
	return &Receiver{name: req.Name, cfg: cfg, key: k, client: client, req: req}, nil
}

// Sign returns the webhook-signature header value for the given id,
// timestamp and body.
func Sign(key []byte, id string, timestamp int64, body []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(id))
	m.Write([]byte("."))
	m.Write([]byte(strconv.FormatInt(timestamp, 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Notify posts msg once. The body is the same on every attempt; the
// timestamp and signature are fresh.
func (r *Receiver) Notify(ctx context.Context, msg notify.Message) (bool, error) {
	body, err := json.Marshal(Body{SchemaVersion: notify.SchemaVersion, Message: msg})
	if err != nil {
		return false, fmt.Errorf("receiver %s: encoding the message: %w", r.name, err)
	}
	now := r.req.Clock()()
	ts := now.Unix()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, string(r.cfg.URL.Reveal()), bytes.NewReader(body))
	if err != nil {
		return false, fmt.Errorf("receiver %s: the configured url is not a valid URL", r.name)
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("User-Agent", "rotator-webhook/1")
	hreq.Header.Set("webhook-id", msg.DeliveryID)
	hreq.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	hreq.Header.Set("webhook-signature", Sign(r.key, msg.DeliveryID, ts, body))
	resp, err := r.client.Do(hreq)
	if err != nil {
		return notify.PostError(ctx, r.name, err)
	}
	retry, err := notify.CheckResponse(resp, now)
	if err != nil {
		return retry, fmt.Errorf("receiver %s: %w", r.name, err)
	}
	return false, nil
}

var _ notify.Receiver = (*Receiver)(nil)
