package postgres

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotatorhq/rotator/internal/connshare"
)

// adminIdleTime is how long an admin connection may stay idle before the
// pool closes it: a provider that rotates once a day holds no connection
// all day, one that rotates every few seconds keeps its connections.
const adminIdleTime = 5 * time.Minute

// ErrClosed is returned by a call on a provider after Close. It is not
// permanent: the engine builds a new provider and tries again.
var ErrClosed = errors.New("postgres-role: the provider is closed")

// configurePool bounds the admin pool and names its connections, so that an
// operator can tell them apart in pg_stat_activity.
func configurePool(c *pgxpool.Config, maxConns int) {
	c.MaxConns = int32(maxConns) //nolint:gosec // G115: 1–64, checked by the configuration
	c.MinConns = 0
	c.MinIdleConns = 0
	c.MaxConnIdleTime = adminIdleTime
	if _, ok := c.ConnConfig.RuntimeParams["application_name"]; !ok {
		c.ConnConfig.RuntimeParams["application_name"] = "rotator"
	}
}

// adminPool is what the provider instances with one admin_dsn and pool
// size share (internal/connshare): the pool of admin connections, and the
// slots of login connections.
type adminPool struct {
	pool   *pgxpool.Pool
	logins chan struct{} // one token per login connection open
}

// poolKey identifies an admin pool: the connection string (as a hash, so
// the registry keeps no copy of it) and the pool size.
type poolKey struct {
	dsn      [32]byte
	maxConns int
}

// admins holds the open admin pools of this process.
var admins = connshare.New[poolKey](func(a *adminPool) { a.pool.Close() })

// shared returns the admin pool and login slots of the provider's
// configuration, opening the pool (without connecting) at the first call
// of the first provider configured so.
func (p *Provider) shared() (*adminPool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if p.ref == nil {
		key := poolKey{dsn: sha256.Sum256(p.cfg.AdminDSN.Reveal()), maxConns: p.cfg.MaxAdminConnections}
		poolCfg, n := p.poolCfg, p.cfg.MaxAdminConnections
		ref, err := connshare.Acquire(admins, key, p, func() (*adminPool, error) {
			pool, err := pgxpool.NewWithConfig(context.Background(), poolCfg)
			if err != nil {
				return nil, err
			}
			return &adminPool{pool: pool, logins: make(chan struct{}, n)}, nil
		})
		if err != nil {
			return nil, err
		}
		p.ref = ref
	}
	return p.ref.Pool, nil
}

// acquire takes an admin connection from the pool (opening one if none is
// idle and the pool is not full, else waiting for one until ctx ends). Call
// release when done; a connection whose query was cancelled half-way is
// closed by pgx and not reused.
func (p *Provider) acquire(ctx context.Context, k call) (*pgx.Conn, func(), error) {
	a, err := p.shared()
	if err != nil {
		return nil, nil, err
	}
	c, err := a.pool.Acquire(ctx)
	if err != nil {
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		if closed { // closed while waiting for a connection
			return nil, nil, ErrClosed
		}
		return nil, nil, p.fail(ctx, k, err, "connecting with admin_dsn")
	}
	return c.Conn(), c.Release, nil
}

// Close lets go of the provider's admin connections and makes every later
// call fail with ErrClosed. The connections are closed when no other
// provider configured alike (same admin_dsn and max_admin_connections) uses
// them; then Close waits until calls in flight have returned theirs.
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

// poolStat returns the admin pool's statistics (nil before the first admin
// call or after Close).
func (p *Provider) poolStat() *pgxpool.Stat {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ref == nil {
		return nil
	}
	return p.ref.Pool.pool.Stat()
}

// login opens a connection of its own with a version's credential to the
// credential's database on the admin_dsn's server: for verify: login, and
// for Revoke where pg_authid cannot be read. At most max_admin_connections
// logins are open at once (each costs the server a new backend); a login
// waits for a slot until ctx ends. Call done to close the connection.
func (p *Provider) login(ctx context.Context, k call) (conn *pgx.Conn, done func(), err error) {
	a, err := p.shared()
	if err != nil {
		return nil, nil, err
	}
	select {
	case a.logins <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	cfg := p.admin.Copy()
	cfg.User, cfg.Password = k.login, k.password
	// The connection runs at most two statements and is closed: a
	// statement cache would cost an allocation and a round trip per
	// statement (prepare, then execute) and save nothing.
	cfg.DefaultQueryExecMode = pgx.QueryExecModeExec
	cfg.StatementCacheCapacity, cfg.DescriptionCacheCapacity = 0, 0
	if k.cred.Database != "" {
		cfg.Database = k.cred.Database
	}
	conn, err = pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		<-a.logins
		return nil, nil, err
	}
	return conn, func() {
		closeConn(ctx, conn)
		<-a.logins
	}, nil
}

func closeConn(ctx context.Context, conn *pgx.Conn) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = conn.Close(cctx)
}

// isAuthFailure reports whether a connection failed because the server
// refused the credential: a wrong or expired password (28P01), or a role
// that may not log in or does not exist (28000).
func isAuthFailure(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000")
}
