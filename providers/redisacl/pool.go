package redisacl

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/rotatorhq/rotator/internal/connshare"
)

// adminIdleTime is how long an admin connection may stay idle before the
// pool closes it.
const adminIdleTime = 5 * time.Minute

// ErrClosed is returned by a call on a provider after Close. It is not
// permanent: the engine builds a new provider and tries again.
var ErrClosed = errors.New("redis-acl: the provider is closed")

// pool is a bounded pool of authenticated admin connections, each a
// go-redis client of one connection, shared by the providers of the process
// with the same server, admin user and pool size (internal/connshare). go-redis honours deadlines but
// not cancellation, so the pool is built from clients of one connection:
// when a call's context ends, the connection that call is using is closed,
// which unblocks it at once, and the client is dropped instead of returned.
type pool struct {
	newClient func(*adminConn) *redis.Client
	slots     chan struct{} // one token per connection in use

	mu     sync.Mutex
	idle   []*adminConn // most recently used last
	closed bool
	timer  *time.Timer // closes connections idle for adminIdleTime

	dials atomic.Int64 // connections opened, for tests
}

// adminConn is one admin client and the connection it is using.
type adminConn struct {
	c        *redis.Client
	mu       sync.Mutex
	nc       net.Conn
	lastUsed time.Time
}

func (a *adminConn) closeConn() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.nc != nil {
		_ = a.nc.Close()
	}
}

// newPool returns an empty pool of admin connections configured by cfg.
func newPool(cfg Config) *pool {
	p := &pool{slots: make(chan struct{}, cfg.MaxAdminConnections)}
	pw := cfg.Password.RevealString()
	p.newClient = func(a *adminConn) *redis.Client {
		return redis.NewClient(options(cfg, cfg.Username, pw, dialer(cfg, func(c net.Conn) {
			p.dials.Add(1)
			a.mu.Lock()
			a.nc = c
			a.mu.Unlock()
		})))
	}
	return p
}

// poolKey identifies an admin pool; the password enters as a hash, so the
// registry keeps no copy of it.
type poolKey struct {
	addr, user string
	password   [32]byte
	tls        bool
	size       int
}

func keyOf(cfg Config) poolKey {
	return poolKey{addr: cfg.Addr, user: cfg.Username, password: sha256.Sum256(cfg.Password.Reveal()), tls: cfg.TLS, size: cfg.MaxAdminConnections}
}

// pools holds the open admin pools of this process.
var pools = connshare.New[poolKey](func(p *pool) { p.close() })

// get returns an admin client for one call, waiting while every connection
// is in use, until ctx ends. Call the returned function when done. If ctx
// ends during the call, the client's connection is closed (the call
// returns at once with an error) and the client is not reused.
func (p *pool) get(ctx context.Context) (*redis.Client, func(), error) {
	select {
	case p.slots <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.slots
		return nil, nil, ErrClosed
	}
	var a *adminConn
	if n := len(p.idle); n > 0 {
		a, p.idle = p.idle[n-1], p.idle[:n-1]
	}
	p.mu.Unlock()
	if a == nil {
		a = &adminConn{}
		a.c = p.newClient(a)
	}
	stop := context.AfterFunc(ctx, a.closeConn)
	return a.c, func() {
		cancelled := !stop() // the connection was closed under the call
		p.mu.Lock()
		a.lastUsed = time.Now()
		keep := !cancelled && !p.closed
		if keep {
			p.idle = append(p.idle, a)
			if p.timer == nil {
				p.timer = time.AfterFunc(adminIdleTime, p.prune)
			}
		}
		p.mu.Unlock()
		if !keep {
			_ = a.c.Close()
		}
		<-p.slots
	}, nil
}

// prune closes the connections idle for adminIdleTime and, while any are
// left, looks again when the oldest would expire.
func (p *pool) prune() {
	now := time.Now()
	p.mu.Lock()
	var stale []*adminConn
	keep := p.idle[:0]
	for _, a := range p.idle {
		if now.Sub(a.lastUsed) >= adminIdleTime {
			stale = append(stale, a)
		} else {
			keep = append(keep, a)
		}
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	p.timer = nil
	if len(keep) > 0 && !p.closed {
		p.timer = time.AfterFunc(adminIdleTime-now.Sub(keep[0].lastUsed), p.prune)
	}
	p.mu.Unlock()
	for _, a := range stale {
		_ = a.c.Close()
	}
}

// close closes the idle connections and makes get fail; connections in use
// are closed when their calls return them.
func (p *pool) close() {
	p.mu.Lock()
	idle := p.idle
	p.idle, p.closed = nil, true
	if p.timer != nil {
		p.timer.Stop()
		p.timer = nil
	}
	p.mu.Unlock()
	for _, a := range idle {
		_ = a.c.Close()
	}
}

// options are the go-redis options of every connection of a provider:
// RESP2, no retries (the engine retries), deadlines from the context, none
// of go-redis's extra commands at connect.
func options(cfg Config, user, password string, dial func(context.Context, string, string) (net.Conn, error)) *redis.Options {
	return &redis.Options{
		Addr:                     cfg.Addr,
		Dialer:                   dial,
		Username:                 user,
		Password:                 password,
		Protocol:                 2,
		PoolSize:                 1,
		MaxRetries:               -1,
		ContextTimeoutEnabled:    true,
		DisableIdentity:          true,
		ConnMaxIdleTime:          adminIdleTime,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
}

// dialer connects to the server (with TLS when configured) and hands the
// connection to keep, so that it can be closed from outside.
func dialer(cfg Config, keep func(net.Conn)) func(context.Context, string, string) (net.Conn, error) {
	var tlsCfg *tls.Config
	if cfg.TLS {
		host, _, _ := net.SplitHostPort(cfg.Addr)
		tlsCfg = &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}
	}
	return func(dctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 5 * time.Minute}).DialContext(dctx, network, addr)
		if err != nil {
			return nil, err
		}
		keep(conn)
		if tlsCfg == nil {
			return conn, nil
		}
		tc := tls.Client(conn, tlsCfg)
		if err := tc.HandshakeContext(dctx); err != nil {
			_ = conn.Close()
			return nil, err
		}
		return tc, nil
	}
}

// client returns a client with one fresh connection, authenticated as user,
// for one call (Verify's AUTH): when ctx ends, its connection is closed, so
// a call blocked on an unresponsive server returns at once. Call the
// returned function when done.
func (p *Provider) client(ctx context.Context, user, password string) (*redis.Client, func()) {
	var (
		mu    sync.Mutex
		stops []func() bool
	)
	c := redis.NewClient(options(p.cfg, user, password, dialer(p.cfg, func(conn net.Conn) {
		stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
		mu.Lock()
		stops = append(stops, stop)
		mu.Unlock()
	})))
	return c, func() {
		_ = c.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, stop := range stops {
			stop()
		}
	}
}

// shared returns the admin pool of the provider's configuration, taking a
// reference at the first call.
func (p *Provider) shared() (*pool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if p.ref == nil {
		cfg := p.cfg
		ref, err := connshare.Acquire(pools, keyOf(cfg), p, func() (*pool, error) { return newPool(cfg), nil })
		if err != nil {
			return nil, err
		}
		p.ref = ref
	}
	return p.ref.Pool, nil
}

// Close lets go of the provider's admin connections and makes later calls
// fail with ErrClosed. The connections are closed when no other provider
// configured alike uses them (connections in use, when their calls end).
// Closing twice is fine.
func (p *Provider) Close() error {
	p.mu.Lock()
	ref := p.ref
	p.ref, p.closed = nil, true
	p.mu.Unlock()
	if ref != nil {
		ref.Release()
	}
	return nil
}

// dials returns how many admin connections the provider's pool opened (for
// tests; 0 before the first admin call).
func (p *Provider) dials() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ref == nil {
		return 0
	}
	return p.ref.Pool.dials.Load()
}
