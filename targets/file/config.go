package file

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/rotatorhq/rotator/internal/settings"
)

// Formats of the published file.
const (
	FormatDotenv = "dotenv"
	FormatJSON   = "json"
	FormatRaw    = "raw"
)

// Config is the configuration of a file target.
type Config struct {
	// Path of the published file; relative paths are relative to the
	// working directory of rotator.
	Path string
	// Format is dotenv (KEY=value lines), json (an object of key: value) or
	// raw (the value alone; one credential per file).
	Format string
	// Mode is the file's permission bits (default 0600).
	Mode uint32
}

var envKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func parse(s settings.Map) (Config, settings.Errors) {
	r := settings.NewReader(s)
	c := Config{
		Path:   r.RequiredString("path"),
		Format: r.OneOf("format", FormatDotenv, FormatDotenv, FormatJSON, FormatRaw),
		Mode:   0o600,
	}
	if m := r.String("mode", ""); m != "" {
		n, err := strconv.ParseUint(m, 8, 32)
		switch {
		case err != nil:
			r.Fail("mode", "must be octal permission bits such as 0600, got %q", m)
		case n&0o077 != 0 && n&0o007 != 0:
			r.Fail("mode", "must not make the file world-accessible (got %s); use 0600 or 0640", m)
		default:
			c.Mode = uint32(n)
		}
	}
	if c.Path != "" && filepath.Base(c.Path) == "." {
		r.Fail("path", "must name a file, got %q", c.Path)
	}
	r.Unknown()
	return c, r.Errors()
}

// Validate checks a file target's settings.
func Validate(s settings.Map) settings.Errors {
	_, errs := parse(s)
	return errs
}

// ValidateKey checks a binding's key: an environment variable name (dotenv)
// or any non-empty JSON field name; the same rule for all formats keeps a
// target's format changeable.
func ValidateKey(key string) error {
	if key == "" {
		return nil
	}
	if !envKey.MatchString(key) {
		return fmt.Errorf("key %q must be a variable name such as GITHUB_TOKEN ([A-Za-z_][A-Za-z0-9_]*)", key)
	}
	return nil
}
