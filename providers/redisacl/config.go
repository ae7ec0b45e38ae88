package redisacl

import (
	"net"
	"strings"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
)

// Config is the configuration of a redis-acl provider.
type Config struct {
	// Addr is the server's host:port.
	Addr string
	// Username and Password authenticate the administrative connection,
	// which needs the ACL command (e.g. +acl|setuser +acl|getuser +info).
	// Empty Username means the default user; Password is a reference.
	Username string
	Password secret.Value
	// TLS connects with TLS (server name from Addr).
	TLS bool
	// PasswordLength is the number of random characters (16–128, default 40).
	PasswordLength int
	// MaxAdminConnections bounds the provider's pool of admin connections
	// (1–64, default DefaultMaxAdminConnections).
	MaxAdminConnections int
}

// DefaultMaxAdminConnections is the default size of the admin connection
// pool of one provider.
const DefaultMaxAdminConnections = 4

// Cred is the per-credential configuration.
type Cred struct {
	// User is the ACL user whose passwords rotate.
	User string
	// Rules are the user's ACL rules (e.g. ~mcp:* +get +set). When set,
	// every activation makes the user's permissions exactly these rules;
	// when empty, rotator leaves permissions alone and only manages
	// passwords.
	Rules []string
}

func parse(s settings.Map) (Config, settings.Errors) {
	r := settings.NewReader(s)
	c := Config{
		Addr:           r.RequiredString("addr"),
		Username:       r.String("username", ""),
		Password:       r.Secret("password"),
		TLS:            r.Bool("tls", false),
		PasswordLength: r.Int("password_length", 40, 16, 128),

		MaxAdminConnections: r.Int("max_admin_connections", DefaultMaxAdminConnections, 1, 64),
	}
	if c.Addr != "" {
		if _, port, err := net.SplitHostPort(c.Addr); err != nil || port == "" {
			r.Fail("addr", "must be host:port, such as redis.internal:6379")
		}
	}
	if strings.ContainsAny(c.Username, " \t\r\n") {
		r.Fail("username", "must not contain white space")
	}
	r.Unknown()
	return c, r.Errors()
}

// forbidden are ACL rules that would take passwords or the on/off switch
// out of rotator's hands.
var forbidden = map[string]string{
	"nopass":    "would let anyone log in as the user",
	"resetpass": "would remove the passwords rotator manages",
	"reset":     "would remove the passwords rotator manages",
	"off":       "would disable the user; rotator switches it on",
	"on":        "is added by rotator",
}

func parseCred(s settings.Map) (Cred, settings.Errors) {
	r := settings.NewReader(s)
	c := Cred{User: r.RequiredString("user")}
	if r.Has("rules") {
		if _, isList := s["rules"].([]any); isList {
			c.Rules = r.Strings("rules", nil)
		} else {
			c.Rules = strings.Fields(r.String("rules", ""))
		}
	}
	if strings.ContainsAny(c.User, " \t\r\n") {
		r.Fail("user", "must not contain white space")
	}
	for _, rule := range c.Rules {
		low := strings.ToLower(rule)
		if why, bad := forbidden[low]; bad {
			r.Fail("rules", "must not contain %s: it %s", rule, why)
			continue
		}
		if strings.ContainsAny(rule[:1], "><#!") {
			r.Fail("rules", "must not contain password rules (>, <, #, !): rotator manages the user's passwords; a password in configuration would also be a literal secret")
		}
	}
	r.Unknown()
	return c, r.Errors()
}

// ValidateProvider checks provider-level settings.
func ValidateProvider(s settings.Map) settings.Errors {
	_, errs := parse(s)
	return errs
}

// ValidateCredential checks per-credential settings.
func ValidateCredential(s settings.Map) settings.Errors {
	_, errs := parseCred(s)
	return errs
}
