package rotation

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sync"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/providers"
	preg "github.com/rotatorhq/rotator/providers/registry"
	"github.com/rotatorhq/rotator/targets"
	treg "github.com/rotatorhq/rotator/targets/registry"
)

// plugins builds provider and target instances from their stored
// configuration and keeps them while that configuration stays the same, so
// that an instance's connections and clients serve many runs.
//
// Every run starts with the configuration that is in the store at that
// moment: the run's read (Store.GetRunWork) returns the spec hash of its
// provider and targets, a changed hash makes the row be read again, and the
// references in the settings (${env:…}, ${file:…}, ${aws-sm:…}) are
// resolved again for every run. An instance is rebuilt when either changed;
// the one it replaces is closed (when it holds resources: io.Closer) once
// the runs using it have finished.
type plugins struct {
	e *Engine
	// sumKey keys the digest of resolved settings (never stored or shown).
	sumKey    []byte
	mu        sync.Mutex
	providers map[string]*instance[providers.Provider]
	targets   map[string]*instance[targets.Target]
}

// instance is one built plugin with the configuration it was built from.
type instance[T any] struct {
	row  pluginRow
	sum  [32]byte
	v    T
	vals []secret.Value // resolved secrets, registered with the redactor
	refs int            // runs using it
	// retired: replaced by a newer instance; closed when refs reaches 0.
	retired bool
}

// pluginRow is the stored configuration of a provider or target.
type pluginRow struct {
	typ, hash string
	settings  settings.Map
}

// lease is an instance in use by one run; release it when the run ends.
type lease struct{ release func() }

func newPlugins(e *Engine) *plugins {
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	return &plugins{e: e, sumKey: key, providers: map[string]*instance[providers.Provider]{}, targets: map[string]*instance[targets.Target]{}}
}

// resolve turns the references in m into secret values and returns them
// with a keyed digest of every reference and its value.
func (p *plugins) resolve(ctx context.Context, m settings.Map) (settings.Map, [32]byte, []secret.Value, error) {
	type pair struct {
		ref string
		val secret.Value
	}
	var pairs []pair
	resolved, err := settings.ResolveWithCredentials(ctx, m, func(ctx context.Context, ref string) (secret.Value, error) {
		v, err := p.e.opts.Resolver.ResolveString(ctx, ref)
		if err == nil {
			pairs = append(pairs, pair{ref, v})
		}
		return v, err
	}, func(ctx context.Context, id string) (secret.Value, error) {
		v, err := p.currentValue(ctx, id)
		if err == nil {
			pairs = append(pairs, pair{"{credential:" + id + "}", v})
		}
		return v, err
	})
	var sum [32]byte
	if err != nil {
		return nil, sum, nil, err
	}
	slices.SortFunc(pairs, func(a, b pair) int {
		if a.ref < b.ref {
			return -1
		}
		if a.ref > b.ref {
			return 1
		}
		return 0
	})
	h := hmac.New(sha256.New, p.sumKey)
	vals := make([]secret.Value, 0, len(pairs))
	for _, pr := range pairs {
		_, _ = io.WriteString(h, pr.ref)
		_, _ = h.Write([]byte{0})
		_, _ = h.Write(pr.val.Reveal())
		_, _ = h.Write([]byte{0})
		vals = append(vals, pr.val)
	}
	copy(sum[:], h.Sum(nil))
	return resolved, sum, vals, nil
}

// currentValue opens the current value of credential id, for a
// {credential: ID} reference in a provider's settings (an
// oauth2-client-credentials provider signing with the key an
// oauth2-private-key-jwt credential rotates). The value is part of the
// settings digest, so a cutover of that credential rebuilds the instances
// that refer to it at their next run.
func (p *plugins) currentValue(ctx context.Context, id string) (secret.Value, error) {
	c, err := p.e.store.GetCredential(ctx, id)
	if err != nil {
		return secret.Value{}, err
	}
	cur := c.Current
	if cur == nil || len(cur.Sealed) == 0 {
		return secret.Value{}, fmt.Errorf("has no current value yet: rotate it first (rotator rotate %s): %w", id, providers.ErrPermanent)
	}
	return p.e.opts.Keyring.Open(cur.CredentialID, cur.ID, cur.KeyID, cur.Sealed)
}

// acquire returns the instance of plugin name for a run: the cached one
// when its configuration (hash) and resolved references are unchanged,
// else a new one built by build. hash is the spec hash the run read; ""
// reads the row.
func acquire[T any](ctx context.Context, p *plugins, cache map[string]*instance[T], name, hash string,
	read func(ctx context.Context) (pluginRow, error),
	build func(ctx context.Context, row pluginRow, resolved settings.Map) (T, error),
) (T, lease, error) {
	var zero T
	p.mu.Lock()
	cur := cache[name]
	p.mu.Unlock()
	var row pluginRow
	if cur != nil && hash != "" && cur.row.hash == hash {
		row = cur.row
	} else {
		var err error
		if row, err = read(ctx); err != nil {
			return zero, lease{}, err
		}
	}
	resolved, sum, vals, err := p.resolve(ctx, row.settings)
	if err != nil {
		return zero, lease{}, fmt.Errorf("%s: resolving settings: %w", name, err)
	}
	p.mu.Lock()
	if cur = cache[name]; cur != nil && cur.row.hash == row.hash && cur.sum == sum {
		cur.refs++
		p.mu.Unlock()
		return cur.v, p.leaseOf(cur), nil
	}
	p.mu.Unlock()
	for _, v := range vals {
		p.e.opts.Redactor.Register(v)
	}
	v, err := build(ctx, row, resolved)
	if err != nil {
		for _, v := range vals {
			p.e.opts.Redactor.Forget(v)
		}
		return zero, lease{}, err
	}
	in := &instance[T]{row: row, sum: sum, v: v, vals: vals, refs: 1}
	p.mu.Lock()
	old := cache[name]
	cache[name] = in
	closeOld := false
	if old != nil {
		old.retired = true
		closeOld = old.refs == 0
	}
	p.mu.Unlock()
	if closeOld {
		p.close(old.v, old.vals)
	}
	return v, p.leaseOf(in), nil
}

func (p *plugins) leaseOf(in any) lease {
	var once sync.Once
	return lease{release: func() {
		once.Do(func() {
			switch x := in.(type) {
			case *instance[providers.Provider]:
				releaseInstance(p, x)
			case *instance[targets.Target]:
				releaseInstance(p, x)
			}
		})
	}}
}

func releaseInstance[T any](p *plugins, in *instance[T]) {
	p.mu.Lock()
	in.refs--
	done := in.retired && in.refs == 0
	p.mu.Unlock()
	if done {
		p.close(in.v, in.vals)
	}
}

// close releases a replaced instance's resources and forgets its secrets.
func (p *plugins) close(v any, vals []secret.Value) {
	if c, ok := v.(io.Closer); ok {
		if err := c.Close(); err != nil {
			p.e.log.Warn("closing a replaced plugin instance failed", slog.String("error", p.e.opts.Redactor.Scrub(err.Error())))
		}
	}
	for _, v := range vals {
		p.e.opts.Redactor.Forget(v)
	}
}

// closeAll closes every cached instance (Engine.Close).
func (p *plugins) closeAll() {
	p.mu.Lock()
	var pending []func()
	for name, in := range p.providers {
		delete(p.providers, name)
		in.retired = true
		if in.refs == 0 {
			pending = append(pending, func() { p.close(in.v, in.vals) })
		}
	}
	for name, in := range p.targets {
		delete(p.targets, name)
		in.retired = true
		if in.refs == 0 {
			pending = append(pending, func() { p.close(in.v, in.vals) })
		}
	}
	p.mu.Unlock()
	for _, f := range pending {
		f()
	}
}

func (p *plugins) provider(ctx context.Context, name, hash string) (providers.Provider, lease, error) {
	return acquire(ctx, p, p.providers, name, hash,
		func(ctx context.Context) (pluginRow, error) {
			row, err := p.e.store.GetProvider(ctx, name)
			if err != nil {
				return pluginRow{}, fmt.Errorf("provider %s: %w", name, err)
			}
			return pluginRow{typ: row.Type, hash: row.SpecHash, settings: row.Settings}, nil
		},
		func(ctx context.Context, row pluginRow, resolved settings.Map) (providers.Provider, error) {
			f, ok := preg.Lookup(row.typ)
			if !ok {
				return nil, fmt.Errorf("provider %s has unknown type %q: %w", name, row.typ, providers.ErrPermanent)
			}
			prov, err := f.New(ctx, providers.Env{Name: name, Settings: resolved, Logger: p.e.log.With(slog.String("provider", name))})
			if err != nil {
				return nil, fmt.Errorf("provider %s: %w", name, err)
			}
			return prov, nil
		})
}

func (p *plugins) target(ctx context.Context, name, hash string) (targets.Target, lease, error) {
	return acquire(ctx, p, p.targets, name, hash,
		func(ctx context.Context) (pluginRow, error) {
			row, err := p.e.store.GetTarget(ctx, name)
			if err != nil {
				return pluginRow{}, fmt.Errorf("target %s: %w", name, err)
			}
			return pluginRow{typ: row.Type, hash: row.SpecHash, settings: row.Settings}, nil
		},
		func(ctx context.Context, row pluginRow, resolved settings.Map) (targets.Target, error) {
			f, ok := treg.Lookup(row.typ)
			if !ok {
				return nil, fmt.Errorf("target %s has unknown type %q: %w", name, row.typ, targets.ErrPermanent)
			}
			t, err := f.New(ctx, targets.Env{Name: name, Settings: resolved, Logger: p.e.log.With(slog.String("target", name))})
			if err != nil {
				return nil, fmt.Errorf("target %s: %w", name, err)
			}
			return t, nil
		})
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

// Close releases the connections and clients of the provider and target
// instances the engine built (those in use are closed when their runs end).
func (e *Engine) Close() { e.plugins.closeAll() }

var _ = store.Provider{}
