package rotation

import (
	"context"
	"errors"
	"fmt"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/targets"
)

// PluginKind says whether a plugin is a provider or a target.
type PluginKind string

// Plugin kinds.
const (
	KindProvider PluginKind = "provider"
	KindTarget   PluginKind = "target"
)

// ProbeResult is the outcome of probing one provider or target. It holds no
// secret: errors are scrubbed of every value the instance resolved.
type ProbeResult struct {
	Kind PluginKind
	Name string
	Type string
	// Probed is true when the plugin type defines a probe
	// (providers.Prober, targets.Prober); false means the instance was only
	// built from its settings (references resolved).
	Probed bool
	// Checked and Unproven are what the probe proved and what it could not.
	Checked  []string
	Unproven []string
	// Error says what is broken; empty when nothing is.
	Error string
	// Fix says what to do about Error, when the plugin knows.
	Fix string
}

// OK reports whether nothing is broken.
func (r ProbeResult) OK() bool { return r.Error == "" }

// NewForProbe returns an Engine that only probes plugins (ProbeProvider,
// ProbeTarget, and Probe when opts.Store is set): probing needs neither a
// keyring nor, for plugins given as rows (from a configuration file), a
// store, so `rotator doctor` can probe providers while the database is
// down. Close it when done.
func NewForProbe(opts Options) *Engine { return newEngine(opts) }

// Probe builds the named provider or target from its stored configuration,
// as a run does (references resolved now), and asks it to probe its system
// read-only.
func (e *Engine) Probe(ctx context.Context, kind PluginKind, name string) ProbeResult {
	if e.store == nil {
		return ProbeResult{Kind: kind, Name: name, Error: "no database to read its configuration from"}
	}
	switch kind {
	case KindProvider:
		row, err := e.store.GetProvider(ctx, name)
		if err != nil {
			return ProbeResult{Kind: kind, Name: name, Error: e.scrub(fmt.Errorf("reading provider %s: %w", name, err))}
		}
		return e.ProbeProvider(ctx, row)
	case KindTarget:
		row, err := e.store.GetTarget(ctx, name)
		if err != nil {
			return ProbeResult{Kind: kind, Name: name, Error: e.scrub(fmt.Errorf("reading target %s: %w", name, err))}
		}
		return e.ProbeTarget(ctx, row)
	}
	return ProbeResult{Kind: kind, Name: name, Error: fmt.Sprintf("unknown plugin kind %q", kind)}
}

// ProbeProvider builds the provider row configures (stored, or read from a
// configuration file) and probes it.
func (e *Engine) ProbeProvider(ctx context.Context, row store.Provider) ProbeResult {
	res := ProbeResult{Kind: KindProvider, Name: row.Name, Type: row.Type}
	p, l, err := e.plugins.providerFrom(ctx, row)
	if err != nil {
		res.Error, res.Fix = e.scrub(err), buildFix(err)
		return res
	}
	defer l.release()
	pr, ok := p.(providers.Prober)
	if !ok {
		res.Checked = []string{fmt.Sprintf("built from its settings (references resolved); type %s defines no probe", row.Type)}
		return res
	}
	res.Probed = true
	resp, err := func() (resp providers.ProbeResponse, err error) {
		defer recoverPlugin("probe", &err)
		return pr.Probe(ctx, providers.ProbeRequest{})
	}()
	res.Checked, res.Unproven = resp.Checked, resp.Unproven
	if err != nil {
		res.Error, res.Fix = e.scrub(err), remedy(err)
	}
	return res
}

// ProbeTarget builds the target row configures and probes it.
func (e *Engine) ProbeTarget(ctx context.Context, row store.Target) ProbeResult {
	res := ProbeResult{Kind: KindTarget, Name: row.Name, Type: row.Type}
	t, l, err := e.plugins.targetFrom(ctx, row)
	if err != nil {
		res.Error, res.Fix = e.scrub(err), buildFix(err)
		return res
	}
	defer l.release()
	pr, ok := t.(targets.Prober)
	if !ok {
		res.Checked = []string{fmt.Sprintf("built from its settings (references resolved); type %s defines no probe", row.Type)}
		return res
	}
	res.Probed = true
	resp, err := func() (resp targets.ProbeResponse, err error) {
		defer recoverPlugin("probe", &err)
		return pr.Probe(ctx, targets.ProbeRequest{})
	}()
	res.Checked, res.Unproven = resp.Checked, resp.Unproven
	if err != nil {
		res.Error, res.Fix = e.scrub(err), remedy(err)
	}
	return res
}

func (e *Engine) scrub(err error) string { return e.opts.Redactor.Scrub(err.Error()) }

// remedy returns the advice a plugin attached to a probe error.
func remedy(err error) string {
	var r interface{ Remedy() string }
	if errors.As(err, &r) {
		return r.Remedy()
	}
	return ""
}

// buildFix is the advice for an instance that could not be built.
func buildFix(err error) string {
	if errors.Is(err, providers.ErrPermanent) || errors.Is(err, targets.ErrPermanent) {
		return "correct the settings named above"
	}
	return "make every reference in its settings resolvable here (${env:…} set, ${file:…} readable by this user, ${aws-sm:…} reachable)"
}
