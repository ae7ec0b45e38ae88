// Package email sends notifications by SMTP with github.com/wneessen/go-mail:
// STARTTLS, implicit TLS or (for a local relay) none, optional AUTH PLAIN
// with the password given by reference, and a message with a plain-text
// and an HTML part. The delivery id is the Message-ID, the same on every
// retry, so a mail system can drop duplicates.
package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"html/template"
	"net"
	"os"
	"strings"
	texttemplate "text/template"

	mail "github.com/wneessen/go-mail"

	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/notify"
)

// Type is the receiver type name in configuration.
const Type = "email"

// Receiver sends to the configured recipients.
type Receiver struct {
	name string
	cfg  Config
	tls  *tls.Config
	req  notify.NewRequest
}

// Factory returns the email factory for notify/registry.
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
	tc := &tls.Config{ServerName: cfg.Host, MinVersion: tls.VersionTLS12}
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("receiver %s: ca_file: %w", req.Name, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("receiver %s: ca_file %s holds no PEM certificate", req.Name, cfg.CAFile)
		}
		tc.RootCAs = pool
	}
	return &Receiver{name: req.Name, cfg: cfg, tls: tc, req: req}, nil
}

func (r *Receiver) client() (*mail.Client, error) {
	opts := []mail.Option{mail.WithPort(r.cfg.Port), mail.WithTimeout(r.cfg.Timeout), mail.WithTLSConfig(r.tls)}
	switch r.cfg.TLS {
	case TLSImplicit:
		opts = append(opts, mail.WithSSL())
	case TLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	if r.cfg.Username != "" {
		opts = append(opts, mail.WithSMTPAuth(mail.SMTPAuthPlain), mail.WithUsername(r.cfg.Username),
			mail.WithPassword(string(r.cfg.Password.Reveal())))
	}
	return mail.NewClient(r.cfg.Host, opts...)
}

// Subject is the subject line of a message.
func Subject(prefix string, msg notify.Message) string {
	if len(msg.Events) == 1 {
		return strings.TrimSpace(prefix + " " + msg.Events[0].Summary)
	}
	creds := map[string]bool{}
	for _, ev := range msg.Events {
		creds[ev.CredentialID] = true
	}
	return fmt.Sprintf("%s %d events for %d credentials", prefix, len(msg.Events), len(creds))
}

var textBody = texttemplate.Must(texttemplate.New("text").Parse(`{{range .Events}}{{.Summary}}
  event:      {{.Kind}} at {{.Time.UTC.Format "2006-01-02T15:04:05Z07:00"}}
{{- if .CredentialID}}
  credential: {{.CredentialID}}{{end}}
{{- if .Consumer}}
  consumer:   {{.Consumer}}{{end}}
{{- if .RunID}}
  run:        {{.RunID}}{{if .Links}}{{if .Links.Run}} {{.Links.Run}}{{end}}{{end}}{{end}}
{{- if .Runbook}}
  runbook:    {{.Runbook}}{{if .Links}}{{if .Links.Runbook}} {{.Links.Runbook}}{{end}}{{end}}{{end}}
{{- if .Reason}}
  reason:     {{.Reason}}{{end}}

{{end}}delivery {{.DeliveryID}} ({{.GroupKey}})
`))

var htmlBody = template.Must(template.New("html").Parse(`<!doctype html>
<html><body style="font-family:sans-serif">
<table cellpadding="4" style="border-collapse:collapse">
<tr><th align="left">Event</th><th align="left">Credential</th><th align="left">Consumer</th><th align="left">Run</th><th align="left">Runbook</th><th align="left">What happened</th></tr>
{{range .Events}}<tr>
<td><code>{{.Kind}}</code></td><td><code>{{.CredentialID}}</code></td><td>{{.Consumer}}</td>
<td>{{if .Links}}{{if .Links.Run}}<a href="{{.Links.Run}}">{{.RunID}}</a>{{else}}{{.RunID}}{{end}}{{else}}{{.RunID}}{{end}}</td>
<td>{{if .Links}}{{if .Links.Runbook}}<a href="{{.Links.Runbook}}">{{.Runbook}}</a>{{else}}{{.Runbook}}{{end}}{{else}}{{.Runbook}}{{end}}</td>
<td>{{.Summary}}</td>
</tr>
{{end}}</table>
<p style="color:#666">delivery {{.DeliveryID}} ({{.GroupKey}})</p>
</body></html>
`))

// Notify sends msg once. Temporary SMTP failures (4xx replies) and
// network errors are worth retrying; permanent ones (5xx) are not.
func (r *Receiver) Notify(ctx context.Context, msg notify.Message) (bool, error) {
	m := mail.NewMsg()
	if err := m.From(r.cfg.From); err != nil {
		return false, fmt.Errorf("receiver %s: from: %w", r.name, err)
	}
	if err := m.To(r.cfg.To...); err != nil {
		return false, fmt.Errorf("receiver %s: to: %w", r.name, err)
	}
	m.Subject(Subject(r.cfg.SubjectPrefix, msg))
	m.SetMessageIDWithValue(msg.DeliveryID + "@rotator")
	m.SetDateWithValue(r.req.Clock()())
	if err := m.SetBodyTextTemplate(textBody, msg); err != nil {
		return false, fmt.Errorf("receiver %s: rendering the text part: %w", r.name, err)
	}
	if err := m.AddAlternativeHTMLTemplate(htmlBody, msg); err != nil {
		return false, fmt.Errorf("receiver %s: rendering the HTML part: %w", r.name, err)
	}
	c, err := r.client()
	if err != nil {
		return false, fmt.Errorf("receiver %s: %w", r.name, err)
	}
	if err := c.DialAndSendWithContext(ctx, m); err != nil {
		return classify(ctx, r.name, err)
	}
	return false, nil
}

func classify(ctx context.Context, name string, err error) (bool, error) {
	err = fmt.Errorf("receiver %s: %w", name, err)
	if ctx.Err() != nil {
		return false, err
	}
	if se, ok := errors.AsType[*mail.SendError](err); ok {
		if se.ErrorCode() >= 500 && se.ErrorCode() < 600 {
			return false, err
		}
		return true, err
	}
	if _, ok := errors.AsType[net.Error](err); ok {
		return true, err
	}
	// Dial, TLS handshake and STARTTLS failures: the server may be back.
	return true, err
}

var _ notify.Receiver = (*Receiver)(nil)
