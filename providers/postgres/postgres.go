// Package postgres is the postgres-role provider: it rotates the password
// of a PostgreSQL login role through an administrative connection.
//
// Two strategies (see docs/providers.md and runbooks/postgres-role.md):
//
//   - alternating (default): the credential's role is a group role (NOLOGIN,
//     holding the privileges); rotator keeps two login roles <role>_a and
//     <role>_b, members of the group, and sets each new password on the one
//     not in use. The previous login role keeps working until it is retired
//     after the grace period, so consumers see no failure (overlap). This is
//     AWS's "alternating users" strategy.
//   - single: the role's own password changes; the old password stops
//     working at once (no overlap).
//
// Passwords never reach the server in clear: Activate sends the SCRAM-SHA-256
// verifier computed here (ALTER ROLE cannot take a bound parameter, and a
// plaintext literal would land in the server log with log_statement=ddl).
// Identifiers are quoted with pgx.Identifier.
//
// The administrative work (reading roles, setting and removing passwords)
// goes over a small pool of admin_dsn connections that the provider keeps
// for its lifetime, shared with the other providers of the process that
// have the same admin_dsn and pool size (pool.go, internal/connshare;
// max_admin_connections, default 4): a new backend costs the server tens of
// milliseconds of CPU, a query on an open one a fraction of a millisecond.
// Only a login verification (verify: login) opens a connection of its own,
// because a login is what it proves. verify: verifier checks the stored
// SCRAM verifier instead (verify.go). A Provider is safe for concurrent
// use; Close releases its connections.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/rotatorhq/rotator/internal/connshare"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/providers"
)

// Type is the provider type name.
const Type = "postgres-role"

// The factory declares what the alternating strategy can do; a provider
// configured with strategy single reports Overlap false (see Capabilities).
var factoryCapabilities = providers.Capabilities{Overlap: true, Revocable: true}

// Factory returns the registry entry of the postgres-role provider.
func Factory() providers.Factory {
	return providers.Factory{
		Description:  "PostgreSQL role passwords (SCRAM), alternating login roles <role>_a/<role>_b for zero-downtime rotation",
		Capabilities: factoryCapabilities,
		CapabilitiesOf: func(s settings.Map) providers.Capabilities {
			cfg, _ := parse(s)
			return capabilitiesOf(cfg)
		},
		ValidateProvider:   ValidateProvider,
		ValidateCredential: ValidateCredential,
		New: func(_ context.Context, env providers.Env) (providers.Provider, error) {
			cfg, errs := parse(env.Settings)
			if len(errs) > 0 {
				return nil, fmt.Errorf("postgres-role: %w: %w", providers.ErrPermanent, errs[0])
			}
			return New(cfg, env.Logger)
		},
	}
}

// Provider rotates role passwords on one PostgreSQL server. It is safe for
// concurrent use.
type Provider struct {
	cfg Config
	// admin is the parsed admin_dsn: the pool's connection configuration,
	// and the base of login connections and published URLs. Read only.
	admin   *pgx.ConnConfig
	poolCfg *pgxpool.Config
	log     *slog.Logger

	mu     sync.Mutex
	ref    *connshare.Ref[*adminPool] // taken at the first admin call
	closed bool

	// derived saves the key derivations of checks against verifiers this
	// instance set (derived.go).
	derived *derived
}

// New returns a provider; it does not connect until a step needs it. Close
// it when done, to release its admin connections.
func New(cfg Config, logger *slog.Logger) (*Provider, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Strategy == "" {
		cfg.Strategy = StrategyAlternating
	}
	if cfg.Format == "" {
		cfg.Format = FormatPassword
		if cfg.Strategy == StrategyAlternating {
			cfg.Format = FormatURL
		}
	}
	if cfg.PasswordLength == 0 {
		cfg.PasswordLength = 32
	}
	if cfg.CheckQuery == "" {
		cfg.CheckQuery = "SELECT 1"
	}
	if cfg.Verify == "" {
		cfg.Verify = VerifyLogin
	}
	if cfg.MaxAdminConnections <= 0 {
		cfg.MaxAdminConnections = DefaultMaxAdminConnections
	}
	if cfg.SCRAMIterations <= 0 {
		cfg.SCRAMIterations = scramIterations
	}
	poolCfg, err := pgxpool.ParseConfig(cfg.AdminDSN.RevealString())
	if err != nil {
		// The parse error quotes the connection string: do not wrap it.
		return nil, fmt.Errorf("postgres-role: %w: admin_dsn is not a valid connection string (postgres://user:password@host:5432/db, or host=... user=... dbname=...)", providers.ErrPermanent)
	}
	configurePool(poolCfg, cfg.MaxAdminConnections)
	return &Provider{cfg: cfg, admin: poolCfg.ConnConfig, poolCfg: poolCfg, log: logger, derived: newDerived()}, nil
}

// Type implements providers.Provider.
func (p *Provider) Type() string { return Type }

// Capabilities implements providers.Provider: strategy single cannot keep
// the old password valid beside the new one.
func (p *Provider) Capabilities() providers.Capabilities { return capabilitiesOf(p.cfg) }

// capabilitiesOf: a single role cannot hold two passwords, so strategy
// single has no overlap.
func capabilitiesOf(cfg Config) providers.Capabilities {
	if cfg.Strategy == StrategySingle {
		return providers.Capabilities{Overlap: false, Revocable: true}
	}
	return factoryCapabilities
}

// call is one step's view of a credential: its settings and the login role
// and password of the version at hand.
type call struct {
	cred     Cred
	login    string
	password string
	secrets  []string // to scrub from errors
}

func (p *Provider) credOf(c providers.Common) (Cred, error) {
	cr, errs := parseCred(c.Settings, p.cfg)
	if len(errs) > 0 {
		return Cred{}, fmt.Errorf("credential %s settings: %w: %w", c.CredentialID, providers.ErrPermanent, errs[0])
	}
	return cr, nil
}

// open reads the login role and password of a version from its value and
// metadata (the format recorded at mint wins over today's configuration).
func (p *Provider) open(c providers.Common, val secret.Value, meta map[string]string) (call, error) {
	cr, err := p.credOf(c)
	if err != nil {
		return call{}, err
	}
	k := call{cred: cr, secrets: p.adminSecrets()}
	format := meta[MetaFormat]
	if format == "" {
		format = p.cfg.Format
	}
	if format == FormatURL {
		u, err := url.Parse(val.RevealString())
		if err != nil || u.User == nil {
			return call{}, fmt.Errorf("version %s: %w: the value is not a postgres:// URL with a user and password", c.VersionID, providers.ErrPermanent)
		}
		k.login = u.User.Username()
		k.password, _ = u.User.Password()
	} else {
		k.password = val.RevealString()
		k.login = meta[MetaLoginRole]
		if k.login == "" {
			if p.cfg.Strategy == StrategyAlternating {
				return call{}, fmt.Errorf("version %s: %w: no %s in its metadata", c.VersionID, providers.ErrPermanent, MetaLoginRole)
			}
			k.login = cr.Role
		}
	}
	if k.login == "" || k.password == "" {
		return call{}, fmt.Errorf("version %s: %w: no login role or no password", c.VersionID, providers.ErrPermanent)
	}
	k.secrets = append(k.secrets, val.RevealString(), k.password)
	return k, nil
}

func (p *Provider) adminSecrets() []string {
	return []string{p.cfg.AdminDSN.RevealString(), p.admin.Password}
}

// Mint implements providers.Provider: a random alphanumeric password for
// the role (single) or for the login role not in use (alternating; see
// nextLoginRole). It changes nothing at the server.
func (p *Provider) Mint(ctx context.Context, req providers.MintRequest) (providers.MintResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.MintResponse{}, err
	}
	cr, err := p.credOf(req.Common)
	if err != nil {
		return providers.MintResponse{}, err
	}
	login := cr.Role
	if p.cfg.Strategy == StrategyAlternating {
		if login, err = p.nextLoginRole(ctx, req, cr); err != nil {
			return providers.MintResponse{}, err
		}
	}
	pwv, err := secret.Random("", p.cfg.PasswordLength, secret.Alphanumeric)
	pw := pwv.RevealString()
	if err != nil {
		return providers.MintResponse{}, err
	}
	val := secret.NewString(pw)
	if p.cfg.Format == FormatURL {
		val = secret.NewString(p.url(login, pw, cr.Database))
	}
	resp := providers.MintResponse{
		Value:        val,
		GrantedScope: req.Scope,
		Metadata:     map[string]string{MetaLoginRole: login, MetaStrategy: p.cfg.Strategy, MetaFormat: p.cfg.Format},
	}
	if cr.ValidFor > 0 {
		resp.ExpiresAt = time.Now().Add(cr.ValidFor).UTC()
	}
	return resp, nil
}

// nextLoginRole picks the login role a new alternating version goes to:
// the one the current version does not use. Without a current version (the
// first rotation, a revoke-first emergency, an inventory restored from an
// old backup) it asks the server and avoids a login role that can log in,
// because consumers may still be using it; if both can, or neither, it
// takes <role>_a.
func (p *Provider) nextLoginRole(ctx context.Context, req providers.MintRequest, cr Cred) (string, error) {
	a, b := cr.Role+"_a", cr.Role+"_b"
	if req.Current != nil {
		switch req.Current.Metadata[MetaLoginRole] {
		case a:
			return b, nil
		case b:
			return a, nil
		}
	}
	k := call{cred: cr, secrets: p.adminSecrets()}
	conn, release, err := p.acquire(ctx, k)
	if err != nil {
		return "", err
	}
	defer release()
	canLogin := map[string]bool{}
	rows, err := conn.Query(ctx, "SELECT rolname, rolcanlogin FROM pg_roles WHERE rolname = ANY($1)", []string{a, b})
	if err != nil {
		return "", p.fail(ctx, k, err, "looking up login roles %s and %s", a, b)
	}
	for rows.Next() {
		var name string
		var ok bool
		if err := rows.Scan(&name, &ok); err != nil {
			rows.Close()
			return "", p.fail(ctx, k, err, "reading login roles")
		}
		canLogin[name] = ok
	}
	if err := rows.Err(); err != nil {
		return "", p.fail(ctx, k, err, "reading login roles")
	}
	if canLogin[a] && !canLogin[b] {
		return b, nil
	}
	return a, nil
}

// Activate implements providers.Provider: for alternating it makes sure the
// login role exists and is a member of the group role; then it sets the
// password (as a SCRAM verifier) with LOGIN and VALID UNTIL.
func (p *Provider) Activate(ctx context.Context, req providers.ActivateRequest) (providers.ActivateResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.ActivateResponse{}, err
	}
	k, err := p.open(req.Common, req.Value, req.Metadata)
	if err != nil {
		return providers.ActivateResponse{}, err
	}
	conn, release, err := p.acquire(ctx, k)
	if err != nil {
		return providers.ActivateResponse{}, err
	}
	defer release()

	if p.cfg.Strategy == StrategyAlternating {
		if err := p.ensureLoginRole(ctx, conn, k); err != nil {
			return providers.ActivateResponse{}, err
		}
	}

	until := "infinity"
	switch {
	case !req.ExpiresAt.IsZero():
		until = req.ExpiresAt.UTC().Format(time.RFC3339)
	case k.cred.ValidFor > 0:
		until = time.Now().Add(k.cred.ValidFor).UTC().Format(time.RFC3339)
	}
	verifier, err := scramVerifier(k.password, p.cfg.SCRAMIterations)
	if err != nil {
		return providers.ActivateResponse{}, err
	}
	p.derived.add(verifier, k.password)
	// Without arguments pgx sends this with the simple protocol: no
	// prepared statement is cached for a text that is never sent again.
	sql := "ALTER ROLE " + pgx.Identifier{k.login}.Sanitize() + " WITH LOGIN PASSWORD " + literal(verifier) + " VALID UNTIL " + literal(until)
	if _, err := conn.Exec(ctx, sql); err != nil {
		var pgErr *pgconn.PgError
		if p.cfg.Strategy == StrategySingle && errors.As(err, &pgErr) && pgErr.Code == "42704" { // undefined_object
			return providers.ActivateResponse{}, fmt.Errorf("%w: role %s does not exist; create it (CREATE ROLE %s LOGIN) and grant it what the consumer needs",
				providers.ErrPermanent, k.login, pgx.Identifier{k.login}.Sanitize())
		}
		return providers.ActivateResponse{}, p.fail(ctx, k, err, "setting the password of %s", k.login)
	}
	return providers.ActivateResponse{Metadata: map[string]string{"valid_until": until}}, nil
}

// ensureLoginRole creates the login role (NOLOGIN until its password is
// set) if it is missing and makes it a member of the group role. In the
// usual case (both exist, and the login role is a member) it is one query.
func (p *Provider) ensureLoginRole(ctx context.Context, conn *pgx.Conn, k call) error {
	group := k.cred.Role
	var groupExists, loginExists, member bool
	err := conn.QueryRow(ctx, `SELECT
		EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1),
		EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2),
		EXISTS (SELECT 1 FROM pg_auth_members m
			JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
			WHERE g.rolname = $1 AND u.rolname = $2)`, group, k.login).Scan(&groupExists, &loginExists, &member)
	if err != nil {
		return p.fail(ctx, k, err, "looking up group role %s and login role %s", group, k.login)
	}
	if !groupExists {
		return fmt.Errorf("%w: group role %s does not exist; create it (CREATE ROLE %s NOLOGIN) and grant it the privileges the consumer needs",
			providers.ErrPermanent, group, pgx.Identifier{group}.Sanitize())
	}
	if !loginExists {
		_, err := conn.Exec(ctx, "CREATE ROLE "+pgx.Identifier{k.login}.Sanitize()+" NOLOGIN INHERIT")
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr) && pgErr.Code == "42710": // duplicate_object: created concurrently
		case err != nil:
			return p.fail(ctx, k, err, "creating login role %s", k.login)
		default:
			p.log.Info("created login role", slog.String("login_role", k.login), slog.String("group_role", group))
		}
	}
	if !member {
		if _, err := conn.Exec(ctx, "GRANT "+pgx.Identifier{group}.Sanitize()+" TO "+pgx.Identifier{k.login}.Sanitize()); err != nil {
			return p.fail(ctx, k, err, "granting %s to %s", group, k.login)
		}
		p.log.Info("granted the group role to the login role", slog.String("login_role", k.login), slog.String("group_role", group))
	}
	return nil
}

// Revoke implements providers.Provider: if the role still has this
// version's password, it sets NOLOGIN and PASSWORD NULL; otherwise (the
// password was never set, or a later version replaced it) there is
// nothing to revoke, and the role is left alone.
func (p *Provider) Revoke(ctx context.Context, req providers.RevokeRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if req.Value.IsZero() {
		return nil
	}
	k, err := p.open(req.Common, req.Value, req.Metadata)
	if err != nil {
		return err
	}
	conn, release, err := p.acquire(ctx, k)
	if err != nil {
		return err
	}
	defer release()
	current, err := p.hasPassword(ctx, conn, k)
	if err != nil {
		return err
	}
	if !current {
		p.log.Debug("the role no longer has this version's password; nothing to revoke", slog.String("login_role", k.login), slog.String("version", req.VersionID))
		return nil
	}
	if _, err := conn.Exec(ctx, "ALTER ROLE "+pgx.Identifier{k.login}.Sanitize()+" WITH NOLOGIN PASSWORD NULL"); err != nil {
		return p.fail(ctx, k, err, "disabling %s", k.login)
	}
	p.log.Info("revoked: login disabled and password removed", slog.String("login_role", k.login), slog.String("version", req.VersionID))
	return nil
}

// hasPassword reports whether the role's stored password is k.password.
// It compares the verifier in pg_authid when the admin role may read it
// (a superuser), and otherwise tries to log in, which needs password
// authentication for the role in pg_hba.conf (with trust, every login
// succeeds and every version counts as current).
func (p *Provider) hasPassword(ctx context.Context, conn *pgx.Conn, k call) (bool, error) {
	var stored *string
	err := conn.QueryRow(ctx, "SELECT rolpassword FROM pg_authid WHERE rolname = $1", k.login).Scan(&stored)
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return false, nil
	case errors.As(err, &pgErr) && pgErr.Code == "42501": // insufficient_privilege
		_, done, err := p.login(ctx, k)
		if err == nil {
			done()
			return true, nil
		}
		if isAuthFailure(err) {
			return false, nil
		}
		return false, p.fail(ctx, k, err, "checking the password of %s by logging in", k.login)
	case err != nil:
		return false, p.fail(ctx, k, err, "reading the password verifier of %s", k.login)
	case stored == nil:
		return false, nil
	}
	return p.derived.known(*stored, k.password) || verifierMatches(*stored, k.login, k.password), nil
}

// fail wraps err with what failed, keeps a cancelled context visible to
// errors.Is, classifies permission errors as permanent, and removes every
// secret of the call from the message.
func (p *Provider) fail(ctx context.Context, k call, err error, format string, args ...any) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && (pgErr.Code == "42501" || pgErr.Code == "3D000") { // insufficient_privilege, invalid_catalog_name
		err = fmt.Errorf("%w: %w", providers.ErrPermanent, err)
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %w", cerr, err)
	}
	e := fmt.Errorf("postgres-role: "+format+": %w", append(args, err)...)
	vals := make([]secret.Value, len(k.secrets))
	for i, s := range k.secrets {
		vals[i] = secret.NewString(s)
	}
	return secret.ScrubError(e, vals...)
}

// url renders the value published with format url.
func (p *Provider) url(login, password, database string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(login, password)}
	q := url.Values{}
	if strings.HasPrefix(p.admin.Host, "/") {
		q.Set("host", p.admin.Host)
		q.Set("port", strconv.Itoa(int(p.admin.Port)))
	} else {
		u.Host = net.JoinHostPort(p.admin.Host, strconv.Itoa(int(p.admin.Port)))
	}
	if database == "" {
		database = p.admin.Database
	}
	u.Path = "/" + database
	q.Set("sslmode", p.sslmode())
	u.RawQuery = q.Encode()
	return u.String()
}

// sslmode is url_sslmode, or the sslmode admin_dsn was parsed with, as far
// as its TLS settings show it.
func (p *Provider) sslmode() string {
	if p.cfg.URLSSLMode != "" {
		return p.cfg.URLSSLMode
	}
	tls := p.admin.TLSConfig
	var fallbackTLS, fallbackPlain bool
	for _, f := range p.admin.Fallbacks {
		if f.TLSConfig != nil {
			fallbackTLS = true
		} else {
			fallbackPlain = true
		}
	}
	switch {
	case tls == nil && fallbackTLS:
		return "allow"
	case tls == nil:
		return "disable"
	case fallbackPlain:
		return "prefer"
	case !tls.InsecureSkipVerify:
		return "verify-full"
	case tls.VerifyPeerCertificate != nil:
		return "verify-ca"
	}
	return "require"
}

// literal quotes s as an SQL string literal (standard_conforming_strings).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

var _ providers.Provider = (*Provider)(nil)
