package generated

import (
	"github.com/rotatorhq/rotator/internal/settings"
)

// Alphabets that `alphabet:` may name; any other string is used literally.
var alphabets = map[string]string{
	"alphanumeric": "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
	"hex":          "0123456789abcdef",
	"base64url":    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
	"symbols":      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#%+-.:=@^_~",
}

// Config is the configuration of a generated provider. Credentials may
// override any field in their settings.
type Config struct {
	// Length is the number of random characters (after the prefix).
	Length int
	// Alphabet is the set of characters drawn from.
	Alphabet string
	// Prefix is prepended to every value (e.g. "rtr_"), which makes leaked
	// values recognisable by secret scanners.
	Prefix string
	// TTL, when set, is reported as the value's lifetime.
	TTL string
}

func parse(s settings.Map, base Config) (Config, settings.Errors) {
	r := settings.NewReader(s)
	c := base
	c.Length = r.Int("length", base.Length, 16, 4096)
	name := r.String("alphabet", "")
	switch {
	case name == "":
	case alphabets[name] != "":
		c.Alphabet = alphabets[name]
	case len(name) >= 2 && uniqueBytes(name):
		c.Alphabet = name
	default:
		r.Fail("alphabet", "must be alphanumeric, hex, base64url, symbols, or a string of at least 2 distinct characters")
	}
	c.Prefix = r.String("prefix", base.Prefix)
	r.Duration("ttl", 0)
	c.TTL = r.String("ttl", base.TTL)
	r.Unknown()
	return c, r.Errors()
}

func uniqueBytes(s string) bool {
	seen := map[byte]bool{}
	for i := 0; i < len(s); i++ {
		if seen[s[i]] || s[i] > 127 {
			return false
		}
		seen[s[i]] = true
	}
	return true
}

var defaults = Config{Length: 40, Alphabet: alphabets["alphanumeric"]}

// ValidateProvider checks provider-level settings.
func ValidateProvider(s settings.Map) settings.Errors {
	_, errs := parse(s, defaults)
	return errs
}

// ValidateCredential checks per-credential settings (the same fields, as overrides).
func ValidateCredential(s settings.Map) settings.Errors {
	_, errs := parse(s, defaults)
	return errs
}
