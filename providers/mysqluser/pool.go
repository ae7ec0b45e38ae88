package mysqluser

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/rotatorhq/rotator/internal/connshare"
)

// adminIdleTime is how long an admin connection may stay idle before the
// pool closes it.
const adminIdleTime = 5 * time.Minute

// ErrClosed is returned by a call on a provider after Close. It is not
// permanent: the engine builds a new provider and tries again.
var ErrClosed = errors.New("mysql-user: the provider is closed")

// adminPool is what the provider instances with one admin_dsn and pool
// size share (internal/connshare): the pool of admin connections, the
// slots of login connections, and what the server is.
type adminPool struct {
	db     *sql.DB
	logins chan struct{} // one token per login connection open

	mu      sync.Mutex
	mariadb *bool // nil until asked
}

type poolKey struct {
	dsn      [32]byte
	maxConns int
}

var admins = connshare.New[poolKey](func(a *adminPool) { _ = a.db.Close() })

// shared returns the admin pool of the provider's configuration, opening
// it (without connecting) at the first call.
func (p *Provider) shared() (*adminPool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, ErrClosed
	}
	if p.ref == nil {
		key := poolKey{dsn: sha256.Sum256(p.cfg.AdminDSN.Reveal()), maxConns: p.cfg.MaxAdminConnections}
		cfg, n := p.admin.Clone(), p.cfg.MaxAdminConnections
		ref, err := connshare.Acquire(admins, key, p, func() (*adminPool, error) {
			conn, err := mysql.NewConnector(cfg)
			if err != nil {
				return nil, err
			}
			db := sql.OpenDB(conn)
			db.SetMaxOpenConns(n)
			db.SetMaxIdleConns(n)
			db.SetConnMaxIdleTime(adminIdleTime)
			return &adminPool{db: db, logins: make(chan struct{}, n)}, nil
		})
		if err != nil {
			return nil, err
		}
		p.ref = ref
	}
	return p.ref.Pool, nil
}

// acquire takes an admin connection from the pool, waiting until ctx ends
// when all are busy. Call release when done.
func (p *Provider) acquire(ctx context.Context, k call) (*sql.Conn, *adminPool, func(), error) {
	a, err := p.shared()
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := a.db.Conn(ctx)
	if err != nil {
		p.mu.Lock()
		closed := p.closed
		p.mu.Unlock()
		if closed {
			return nil, nil, nil, ErrClosed
		}
		return nil, nil, nil, p.fail(ctx, k, err, "connecting with admin_dsn")
	}
	return c, a, func() { _ = c.Close() }, nil
}

// isMariaDB reports whether the server is MariaDB (asked once per pool):
// the two differ in the syntax of SET DEFAULT ROLE and CURRENT_ROLE().
func (a *adminPool) isMariaDB(ctx context.Context, conn *sql.Conn) (bool, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mariadb != nil {
		return *a.mariadb, nil
	}
	var v string
	if err := conn.QueryRowContext(ctx, "SELECT VERSION()").Scan(&v); err != nil {
		return false, err
	}
	m := strings.Contains(strings.ToLower(v), "mariadb")
	a.mariadb = &m
	return m, nil
}

// Close lets go of the provider's admin connections and makes every later
// call fail with ErrClosed. The connections are closed when no other
// provider configured alike uses them. Closing twice is fine.
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

// login opens a connection of its own with a version's credential, to the
// credential's database on admin_dsn's server, and pings it. At most
// max_admin_connections logins are open at once. Call done to close it.
func (p *Provider) login(ctx context.Context, k call) (conn *sql.Conn, done func(), err error) {
	a, err := p.shared()
	if err != nil {
		return nil, nil, err
	}
	select {
	case a.logins <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, ctx.Err()
	}
	cfg := p.admin.Clone()
	cfg.User, cfg.Passwd = k.login, k.password
	cfg.DBName = k.cred.Database
	if cfg.DBName == "" {
		cfg.DBName = p.admin.DBName
	}
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		<-a.logins
		return nil, nil, err
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(0)
	conn, err = db.Conn(ctx)
	if err == nil {
		err = conn.PingContext(ctx)
		if err != nil {
			_ = conn.Close()
		}
	}
	if err != nil {
		_ = db.Close()
		<-a.logins
		return nil, nil, err
	}
	return conn, func() {
		_ = conn.Close()
		_ = db.Close()
		<-a.logins
	}, nil
}

// MySQL and MariaDB error numbers.
const (
	erAccessDenied       = 1045 // wrong password, or no such account
	erAccessDeniedNoPass = 1698 // MariaDB: no such account
	erMustChangePassword = 1862 // password expired
	erAccountLockedMySQL = 3118
	erAccountLockedMaria = 4151
	erNoSuchUser         = 1133 // SHOW CREATE USER of a missing account
	erNoSuchGrant        = 1141 // SHOW GRANTS of a missing account
	erInvalidRoleMaria   = 1959
	erUnknownAuthIDMySQL = 3523
	erSpecificAccessDeny = 1227
	erDBAccessDenied     = 1044
	erTableAccessDenied  = 1142
	erBadDB              = 1049
	erCannotUser         = 1396 // CREATE/ALTER/DROP USER failed
)

func errNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// isAuthFailure reports whether a login failed because the server refused
// the credential: a wrong password, a missing or locked account, an
// expired password.
func isAuthFailure(err error) bool {
	switch errNumber(err) {
	case erAccessDenied, erAccessDeniedNoPass, erMustChangePassword, erAccountLockedMySQL, erAccountLockedMaria:
		return true
	}
	return false
}
