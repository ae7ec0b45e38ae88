package execplugin

import (
	"fmt"
	"regexp"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
)

// Config is the configuration of an exec provider.
type Config struct {
	// Command is the plugin's argv; rotator appends the step name.
	Command []string
	// Dir is the plugin's working directory; empty means rotator's.
	Dir string
	// Timeout bounds one run of the plugin (default 30s); at the timeout
	// the plugin's whole process group is killed.
	Timeout time.Duration
	// Env is the plugin's environment on top of a minimal base (PATH, HOME,
	// LANG, LC_ALL, TZ, TMPDIR): rotator's own environment, which may hold
	// the master key, is never passed on. Values may be references.
	Env map[string]secret.Value
	// Overlap and Revocable are the capabilities the plugin claims (both
	// false unless set): whether the resource accepts the old and the new
	// value at once, and whether revoke really invalidates a value.
	Overlap, Revocable bool
}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func parse(s settings.Map) (Config, settings.Errors) {
	r := settings.NewReader(s)
	c := Config{
		Command:   r.Strings("command", nil),
		Dir:       r.String("dir", ""),
		Timeout:   r.Duration("timeout", 30*time.Second),
		Overlap:   r.Bool("overlap", false),
		Revocable: r.Bool("revocable", false),
		Env:       map[string]secret.Value{},
	}
	if len(c.Command) == 0 || c.Command[0] == "" {
		if !failed(r, "command") {
			r.Fail("command", "is required: the plugin's argv as a list, such as [./plugins/apikeys, --store, /var/lib/keys.json]; rotator appends the step name")
		}
	}
	if c.Timeout <= 0 || c.Timeout > time.Hour {
		r.Fail("timeout", "must be between 1s and 1h")
	}
	env := r.Map("env")
	er := settings.NewReader(env)
	for name := range env {
		if !envName.MatchString(name) {
			r.Fail("env."+name, "must be an environment variable name ([A-Za-z_][A-Za-z0-9_]*)")
			continue
		}
		c.Env[name] = er.Secret(name)
	}
	for _, e := range er.Errors() {
		r.Fail("env."+e.Field, "%s", e.Msg)
	}
	r.Unknown()
	return c, r.Errors()
}

func failed(r *settings.Reader, field string) bool {
	for _, e := range r.Errors() {
		if e.Field == field {
			return true
		}
	}
	return false
}

// ValidateProvider checks provider-level settings.
func ValidateProvider(s settings.Map) settings.Errors {
	_, errs := parse(s)
	return errs
}

// ValidateCredential accepts any mapping of plain data: credential settings
// are passed to the plugin, which validates them itself. References are
// refused, because credential settings are not resolved.
func ValidateCredential(s settings.Map) settings.Errors {
	var errs settings.Errors
	for k, v := range s {
		if err := plain(v); err != nil {
			errs = append(errs, settings.Error{Field: k, Msg: err.Error()})
		}
	}
	return errs
}

func plain(v any) error {
	switch x := v.(type) {
	case string:
		if secret.IsRef(x) {
			return fmt.Errorf("holds a reference, but credential settings are passed to the plugin as they are; give the plugin secrets through the provider's env")
		}
		return nil
	case nil, bool, int, int64, float64:
		return nil
	case []any:
		for _, e := range x {
			if err := plain(e); err != nil {
				return err
			}
		}
		return nil
	case map[string]any:
		for _, e := range x {
			if err := plain(e); err != nil {
				return err
			}
		}
		return nil
	case settings.Map:
		return plain(map[string]any(x))
	}
	return fmt.Errorf("must be plain data (strings, numbers, booleans, lists, mappings), got %T", v)
}
