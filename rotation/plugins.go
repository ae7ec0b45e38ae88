package rotation

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/providers"
	preg "github.com/rotatorhq/rotator/providers/registry"
	"github.com/rotatorhq/rotator/targets"
	treg "github.com/rotatorhq/rotator/targets/registry"
)

// plugins builds provider and target instances from their stored
// configuration and caches them until that configuration changes. A cached
// instance is used without reading its row again for pluginRecheck, so a
// changed configuration (apply, possibly in another process) takes effect
// within that time; reading the row for every run cost one database round
// trip per rotation (and per target).
type plugins struct {
	e         *Engine
	mu        sync.Mutex
	providers map[string]cachedProvider
	targets   map[string]cachedTarget
}

// pluginRecheck is how long a cached provider or target is used before its
// stored configuration is read again.
const pluginRecheck = time.Second

type cachedProvider struct {
	hash    string
	checked time.Time
	p       providers.Provider
}

type cachedTarget struct {
	hash    string
	checked time.Time
	t       targets.Target
}

func newPlugins(e *Engine) *plugins {
	return &plugins{e: e, providers: map[string]cachedProvider{}, targets: map[string]cachedTarget{}}
}

// resolve turns the references in settings into secret values and teaches
// the redactor about them.
func (p *plugins) resolve(ctx context.Context, m settings.Map) (settings.Map, error) {
	return settings.Resolve(ctx, m, func(ctx context.Context, ref string) (secret.Value, error) {
		v, err := p.e.opts.Resolver.ResolveString(ctx, ref)
		if err == nil {
			p.e.opts.Redactor.Register(v)
		}
		return v, err
	})
}

func (p *plugins) provider(ctx context.Context, name string) (providers.Provider, error) {
	p.mu.Lock()
	c, ok := p.providers[name]
	p.mu.Unlock()
	if ok && time.Since(c.checked) < pluginRecheck {
		return c.p, nil
	}
	checked := time.Now()
	row, err := p.e.store.GetProvider(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("provider %s: %w", name, err)
	}
	if ok && c.hash == row.SpecHash {
		p.mu.Lock()
		if cur, ok := p.providers[name]; ok && cur.hash == row.SpecHash {
			cur.checked = checked
			p.providers[name] = cur
		}
		p.mu.Unlock()
		return c.p, nil
	}
	f, ok := preg.Lookup(row.Type)
	if !ok {
		return nil, fmt.Errorf("provider %s has unknown type %q: %w", name, row.Type, providers.ErrPermanent)
	}
	resolved, err := p.resolve(ctx, row.Settings)
	if err != nil {
		return nil, fmt.Errorf("provider %s: resolving settings: %w", name, err)
	}
	prov, err := f.New(ctx, providers.Env{Name: name, Settings: resolved, Logger: p.e.log.With(slog.String("provider", name))})
	if err != nil {
		return nil, fmt.Errorf("provider %s: %w", name, err)
	}
	p.mu.Lock()
	p.providers[name] = cachedProvider{hash: row.SpecHash, checked: checked, p: prov}
	p.mu.Unlock()
	return prov, nil
}

func (p *plugins) target(ctx context.Context, name string) (targets.Target, error) {
	p.mu.Lock()
	c, ok := p.targets[name]
	p.mu.Unlock()
	if ok && time.Since(c.checked) < pluginRecheck {
		return c.t, nil
	}
	checked := time.Now()
	row, err := p.e.store.GetTarget(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", name, err)
	}
	if ok && c.hash == row.SpecHash {
		p.mu.Lock()
		if cur, ok := p.targets[name]; ok && cur.hash == row.SpecHash {
			cur.checked = checked
			p.targets[name] = cur
		}
		p.mu.Unlock()
		return c.t, nil
	}
	f, ok := treg.Lookup(row.Type)
	if !ok {
		return nil, fmt.Errorf("target %s has unknown type %q: %w", name, row.Type, targets.ErrPermanent)
	}
	resolved, err := p.resolve(ctx, row.Settings)
	if err != nil {
		return nil, fmt.Errorf("target %s: resolving settings: %w", name, err)
	}
	t, err := f.New(ctx, targets.Env{Name: name, Settings: resolved, Logger: p.e.log.With(slog.String("target", name))})
	if err != nil {
		return nil, fmt.Errorf("target %s: %w", name, err)
	}
	p.mu.Lock()
	p.targets[name] = cachedTarget{hash: row.SpecHash, checked: checked, t: t}
	p.mu.Unlock()
	return t, nil
}

// Capabilities returns the capabilities of a stored provider's type.
func (e *Engine) Capabilities(ctx context.Context, providerName string) (providers.Capabilities, string, error) {
	row, err := e.store.GetProvider(ctx, providerName)
	if err != nil {
		return providers.Capabilities{}, "", err
	}
	f, ok := preg.Lookup(row.Type)
	if !ok {
		return providers.Capabilities{}, row.Type, fmt.Errorf("provider %s has unknown type %q", providerName, row.Type)
	}
	return f.CapabilitiesFor(row.Settings), row.Type, nil
}

var _ = store.Provider{}
