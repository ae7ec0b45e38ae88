package email

import (
	"net/mail"
	"os"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
)

// TLS modes of `tls:`.
const (
	// TLSStartTLS upgrades a plain connection with STARTTLS and refuses a
	// server that does not offer it (the default; port 587).
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (port 465).
	TLSImplicit = "tls"
	// TLSNone sends in clear text; for a relay on localhost only.
	TLSNone = "none"
)

// Defaults.
const (
	DefaultTimeout       = 30 * time.Second
	DefaultSubjectPrefix = "[rotator]"
)

// Config is the configuration of an email receiver.
type Config struct {
	Host string
	// Port defaults to 587 (starttls), 465 (tls) or 25 (none).
	Port int
	TLS  string
	// CAFile, when set, is a PEM file of the CAs trusted for the server's
	// certificate instead of the system's.
	CAFile string
	// Username and Password authenticate (SMTP AUTH PLAIN) when Username
	// is set; Password is always a reference.
	Username string
	Password secret.Value
	From     string
	To       []string
	// SubjectPrefix starts every subject.
	SubjectPrefix string
	Timeout       time.Duration
}

func parse(s settings.Map, resolved bool) (Config, settings.Errors) {
	r := settings.NewReader(s)
	c := Config{
		Host: r.RequiredString("host"),
		TLS:  r.OneOf("tls", TLSStartTLS, TLSStartTLS, TLSImplicit, TLSNone),
	}
	def := map[string]int{TLSStartTLS: 587, TLSImplicit: 465, TLSNone: 25}[c.TLS]
	c.Port = r.Int("port", def, 1, 65535)
	c.CAFile = r.String("ca_file", "")
	c.Username = r.String("username", "")
	c.Password = r.Secret("password")
	c.From = r.RequiredString("from")
	c.To = r.Strings("to", nil)
	c.SubjectPrefix = r.String("subject_prefix", DefaultSubjectPrefix)
	c.Timeout = r.Duration("timeout", DefaultTimeout)
	r.Unknown()
	if c.From != "" {
		if _, err := mail.ParseAddress(c.From); err != nil {
			r.Fail("from", "must be an email address such as rotator@example.com")
		}
	}
	if len(c.To) == 0 && !r.Has("to") {
		r.Fail("to", "is required: a list of recipients such as [oncall@example.com]")
	}
	for i, to := range c.To {
		if _, err := mail.ParseAddress(to); err != nil {
			r.Fail("to", "item %d must be an email address such as oncall@example.com", i)
		}
	}
	pw := string(c.Password.Reveal())
	if pw != "" && !resolved && !secret.IsRef(pw) {
		r.Fail("password", "must be a reference such as ${env:SMTP_PASSWORD}, never the password itself")
	}
	if (pw != "") != (c.Username != "") {
		r.Fail("username", "username and password go together (SMTP AUTH), or neither")
	}
	if c.CAFile != "" && resolved {
		if _, err := os.Stat(c.CAFile); err != nil {
			r.Fail("ca_file", "cannot be read: %v", err)
		}
	}
	return c, r.Errors()
}
