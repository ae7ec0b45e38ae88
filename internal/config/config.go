// Package config loads and validates rotator's YAML configuration: the
// provider instances, the targets, and the credential inventory with its
// policies and runbooks (DESIGN.md §12).
//
// Validation reports every problem of a file at once, each with its file,
// line and dotted field path, as *Errors. Above all it refuses literal
// secrets (DESIGN.md §2.1): a non-reference value under a key that names a
// secret, a string that contains a known token format anywhere in the
// document, and a random-looking string in provider or target settings are
// load errors. No error message ever contains the offending value.
package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"time"

	// Windows and CRON_TZ name IANA time zones; embedding the database keeps
	// validation independent of the host's zoneinfo files.
	_ "time/tzdata"

	"github.com/rotatorhq/rotator/internal/runbook"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/notify"
)

// Config is a validated configuration file.
type Config struct {
	// Providers are the provider instances, by name.
	Providers map[string]Provider
	// Targets are the targets, by name.
	Targets map[string]Target
	// Credentials are the credentials in file order.
	Credentials []Credential
	// Notify is the notify: section (receivers, routes, grouping); nil
	// when the file has none.
	Notify *notify.Config
	// Delivery is the delivery: section (nil when absent).
	Delivery *Delivery
	// File is the name the configuration was loaded from.
	File string
	// Warnings are non-fatal findings (an unused provider, a grace period
	// with a provider that cannot keep two values valid), sorted by line.
	Warnings []Error
}

// Provider is a configured provider instance.
type Provider struct {
	// Name is the key under providers:.
	Name string
	// Type is the registered provider type, such as generated.
	Type string
	// Settings are every key of the provider except type. Secrets in them
	// are references, never values.
	Settings settings.Map
	// Line is the line of the provider's name.
	Line int
	// Lines are the lines of the settings' fields, by dotted path relative
	// to the settings (client_secret, verify.introspection.url, command[0]).
	Lines map[string]int
}

// Target is a configured target.
type Target struct {
	// Name is the key under targets:.
	Name string
	// Type is the registered target type, such as file.
	Type string
	// Settings are every key of the target except type.
	Settings settings.Map
	// Line is the line of the target's name.
	Line int
	// Lines are the lines of the settings' fields, as Provider.Lines.
	Lines map[string]int
}

// Credential is one credential of the inventory as declared in the file.
type Credential struct {
	// ID is the credential's slug.
	ID string
	// Consumer is the MCP server or client that uses the credential.
	Consumer string
	// Provider names the provider instance that mints values.
	Provider string
	// Scope is the declared scope.
	Scope []string
	// Owner is the team or person responsible.
	Owner string
	// Labels are free key/value pairs used for selection (team, env).
	// Credentials with equal labels share one map: do not modify it.
	Labels map[string]string
	// Settings are the per-credential provider settings.
	Settings settings.Map
	// Policy holds max_age, renew_before or renew_at, schedule, window and grace.
	Policy store.Policy
	// Runbook is the runbook reference as written (runbooks/x.md#anchor).
	Runbook string
	// RunbookRef is the resolved runbook; File and Digest are empty when
	// runbooks were not checked.
	RunbookRef runbook.Ref
	// Targets are where the current value is published.
	Targets []store.TargetBinding
	// Line is the line of the credential's list item.
	Line int
}

// Options tune Parse.
type Options struct {
	// BaseDir is the directory relative runbook paths are looked up in
	// (then in each of its parents, see runbook.Resolve). Empty means the
	// directory of the configuration file.
	BaseDir string
	// CheckRunbooks resolves every credential's runbook and checks that the
	// file and the anchor exist. Load always sets it.
	CheckRunbooks bool

	// whole parses the document as one node tree, never item by item
	// (tests compare the two).
	whole bool
}

// Load reads and validates the configuration file at path, checking that
// every runbook exists. An invalid file yields *Errors; a file over
// DefaultMaxFileSize yields *FileTooLargeError (LoadLimit sets another
// limit).
func Load(path string) (*Config, error) { return LoadLimit(path, DefaultMaxFileSize) }

// Parse validates configuration data; name is used in errors and to default
// Options.BaseDir. It returns either a Config or an error, never both: an
// invalid document yields *Errors holding every problem found.
func Parse(name string, data []byte, opts Options) (*Config, error) {
	return parse(name, data, opts, builtin)
}

func parse(name string, data []byte, opts Options, reg registries) (*Config, error) {
	return parseFrom(name, io.NewSectionReader(bytes.NewReader(data), 0, int64(len(data))), opts, reg)
}

// parseFrom parses the text src holds: item by item where it can (see
// parseSplit), else as one document.
func parseFrom(name string, src *io.SectionReader, opts Options, reg registries) (*Config, error) {
	if opts.BaseDir == "" {
		opts.BaseDir = filepath.Dir(name)
	}
	p := newParser(name, opts, reg)
	cfg, ok := (*Config)(nil), false
	if !opts.whole {
		cfg, ok = p.parseSplit(src)
	}
	if !ok {
		data := make([]byte, src.Size())
		if _, err := src.ReadAt(data, 0); err != nil && !errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("reading config: %w", err)
		}
		p = newParser(name, opts, reg)
		cfg = p.parse(data)
	}
	errs := p.finish()
	if len(errs) > 0 {
		return nil, &Errors{List: errs}
	}
	cfg.Warnings = sortErrors(p.warns)
	return cfg, nil
}

// Provider returns the provider instance called name.
func (c *Config) Provider(name string) (Provider, bool) {
	p, ok := c.Providers[name]
	return p, ok
}

// Target returns the target called name.
func (c *Config) Target(name string) (Target, bool) {
	t, ok := c.Targets[name]
	return t, ok
}

// Credential returns the credential with the given id.
func (c *Config) Credential(id string) (Credential, bool) {
	for _, cr := range c.Credentials {
		if cr.ID == id {
			return cr, true
		}
	}
	return Credential{}, false
}

// ProviderNames returns the names of the providers, sorted.
func (c *Config) ProviderNames() []string { return slices.Sorted(maps.Keys(c.Providers)) }

// TargetNames returns the names of the targets, sorted.
func (c *Config) TargetNames() []string { return slices.Sorted(maps.Keys(c.Targets)) }

// StoreProviders returns the providers as store rows, sorted by name.
func (c *Config) StoreProviders() []store.Provider {
	out := make([]store.Provider, 0, len(c.Providers))
	for _, name := range c.ProviderNames() {
		out = append(out, c.Providers[name].ToStore())
	}
	return out
}

// StoreCredentials returns the credentials as store rows, in file order.
func (c *Config) StoreCredentials() []store.Credential {
	out := make([]store.Credential, 0, len(c.Credentials))
	for _, cr := range c.Credentials {
		out = append(out, cr.ToStore())
	}
	return out
}

// ToStore returns the provider as a store row with its SpecHash set.
func (p Provider) ToStore() store.Provider {
	return store.Provider{
		Name:     p.Name,
		Type:     p.Type,
		Settings: p.Settings,
		SpecHash: specHash(struct {
			Name     string       `json:"name"`
			Type     string       `json:"type"`
			Settings settings.Map `json:"settings"`
		}{p.Name, p.Type, nonNilMap(p.Settings)}),
	}
}

// ToStore returns the credential's spec as a store row with its SpecHash
// set; the state fields are left zero. The hash covers every declared field
// (with the runbook as written) and not the runbook's digest, so editing a
// runbook does not make apply report the credential as updated.
func (c Credential) ToStore() store.Credential {
	return store.Credential{
		ID:       c.ID,
		Consumer: c.Consumer,
		Provider: c.Provider,
		Scope:    c.Scope,
		Owner:    c.Owner,
		Labels:   c.Labels,
		Settings: c.Settings,
		Policy:   c.Policy,
		Runbook:  c.Runbook,
		Targets:  c.Targets,
		SpecHash: c.SpecHash(),
	}
}

// SpecHash returns "sha256:" and the hex SHA-256 of a canonical JSON
// encoding of the credential's declared spec. Nil and empty lists and maps
// hash alike; the runbook digest is not part of it.
func (c Credential) SpecHash() string {
	scope := c.Scope
	if scope == nil {
		scope = []string{}
	}
	labels := c.Labels
	if labels == nil {
		labels = map[string]string{}
	}
	targets := c.Targets
	if targets == nil {
		targets = []store.TargetBinding{}
	}
	return specHash(struct {
		ID          string                `json:"id"`
		Consumer    string                `json:"consumer"`
		Provider    string                `json:"provider"`
		Scope       []string              `json:"scope"`
		Owner       string                `json:"owner"`
		Labels      map[string]string     `json:"labels"`
		Settings    settings.Map          `json:"settings"`
		MaxAge      time.Duration         `json:"max_age_ns"`
		RenewBefore time.Duration         `json:"renew_before_ns"`
		RenewAt     float64               `json:"renew_at"`
		Schedule    string                `json:"schedule"`
		Window      *store.Window         `json:"window"`
		Grace       time.Duration         `json:"grace_ns"`
		Runbook     string                `json:"runbook"`
		Targets     []store.TargetBinding `json:"targets"`
	}{
		c.ID, c.Consumer, c.Provider, scope, c.Owner, labels, nonNilMap(c.Settings),
		c.Policy.MaxAge, c.Policy.RenewBefore, c.Policy.RenewAt, c.Policy.Schedule, c.Policy.Window,
		c.Policy.Grace, c.Runbook, targets,
	})
}

func nonNilMap(m settings.Map) settings.Map {
	if m == nil {
		return settings.Map{}
	}
	return m
}

// specHash hashes the JSON encoding of v; encoding/json sorts map keys, so
// equal specs hash alike.
func specHash(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Settings hold only YAML scalars, lists and maps, which always
		// encode; fall back to a representation that still changes with v.
		b = fmt.Appendf(nil, "%#v", v)
	}
	sum := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(sum[:])
}
