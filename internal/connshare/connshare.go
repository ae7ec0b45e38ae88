// Package connshare shares a connection pool among the provider instances
// of one process that are configured alike.
//
// The engine builds a provider instance from its stored configuration and
// caches it, but it may build several at once (workers that start runs
// together each find the cache empty) and drop all but one, and it builds a
// new one whenever the configuration changes. A provider that opened a pool
// per instance would then hold several pools to one server, each with its
// connections. With connshare, instances with the same key (the admin
// connection string and pool size, say) hold one pool: a Registry opens it
// for the first and closes it when the last lets go, by Close or by being
// garbage collected without it.
package connshare

import (
	"runtime"
	"sync"
)

// Registry holds the open pools of one kind, by key. The zero value is not
// usable; use New.
type Registry[K comparable, P any] struct {
	close func(P)

	mu sync.Mutex
	m  map[K]*entry[P]
}

type entry[P any] struct {
	pool P
	refs int
}

// New returns a registry whose pools are closed with close.
func New[K comparable, P any](close func(P)) *Registry[K, P] {
	return &Registry[K, P]{close: close, m: map[K]*entry[P]{}}
}

// Ref is one holder's reference to a pool.
type Ref[P any] struct {
	Pool    P
	once    sync.Once
	release func(async bool)
}

// Release lets go of the pool; the last release closes it (and waits for
// close to return). Releasing twice is fine.
func (r *Ref[P]) Release() { r.once.Do(func() { r.release(false) }) }

// Acquire returns a reference to g's pool of key, opening it with open if
// no holder has it. When holder becomes unreachable without having released
// the reference, the reference is released then (and the pool closed in the
// background if it was the last).
func Acquire[H any, K comparable, P any](g *Registry[K, P], key K, holder *H, open func() (P, error)) (*Ref[P], error) {
	g.mu.Lock()
	e, ok := g.m[key]
	if !ok {
		p, err := open()
		if err != nil {
			g.mu.Unlock()
			return nil, err
		}
		e = &entry[P]{pool: p}
		g.m[key] = e
	}
	e.refs++
	g.mu.Unlock()
	r := &Ref[P]{Pool: e.pool}
	r.release = func(async bool) {
		g.mu.Lock()
		e.refs--
		last := e.refs == 0
		if last && g.m[key] == e {
			delete(g.m, key)
		}
		g.mu.Unlock()
		if !last {
			return
		}
		if async {
			go g.close(e.pool)
		} else {
			g.close(e.pool)
		}
	}
	// The cleanup must not reach holder; it holds the reference only.
	runtime.AddCleanup(holder, func(r *Ref[P]) { r.once.Do(func() { r.release(true) }) }, r)
	return r, nil
}

// Len returns the number of open pools.
func (g *Registry[K, P]) Len() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return len(g.m)
}
