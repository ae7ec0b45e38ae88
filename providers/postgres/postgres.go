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
package postgres

import (
	"context"
	"crypto/hmac"
	"crypto/md5" //nolint:gosec // G501: only to recognise md5 verifiers that older servers stored
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

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
				return nil, fmt.Errorf("postgres-role provider %s: %w: %w", env.Name, providers.ErrPermanent, errs[0])
			}
			return New(cfg, env.Logger)
		},
	}
}

// Provider rotates role passwords on one PostgreSQL server.
type Provider struct {
	cfg   Config
	admin *pgx.ConnConfig
	log   *slog.Logger
}

// New returns a provider; it does not connect until a step needs it.
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
	admin, err := pgx.ParseConfig(cfg.AdminDSN.RevealString())
	if err != nil {
		// The parse error quotes the connection string: do not wrap it.
		return nil, fmt.Errorf("postgres-role: %w: admin_dsn is not a valid connection string (postgres://user:password@host:5432/db, or host=... user=... dbname=...)", providers.ErrPermanent)
	}
	return &Provider{cfg: cfg, admin: admin, log: logger}, nil
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
	conn, err := p.connectAdmin(ctx, k)
	if err != nil {
		return "", err
	}
	defer closeConn(ctx, conn)
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
	conn, err := p.connectAdmin(ctx, k)
	if err != nil {
		return providers.ActivateResponse{}, err
	}
	defer closeConn(ctx, conn)

	if p.cfg.Strategy == StrategyAlternating {
		if err := p.ensureLoginRole(ctx, conn, k); err != nil {
			return providers.ActivateResponse{}, err
		}
	} else if ok, err := roleExists(ctx, conn, k.login); err != nil {
		return providers.ActivateResponse{}, p.fail(ctx, k, err, "looking up role %s", k.login)
	} else if !ok {
		return providers.ActivateResponse{}, fmt.Errorf("%w: role %s does not exist; create it (CREATE ROLE %s LOGIN) and grant it what the consumer needs",
			providers.ErrPermanent, k.login, pgx.Identifier{k.login}.Sanitize())
	}

	until := "infinity"
	switch {
	case !req.ExpiresAt.IsZero():
		until = req.ExpiresAt.UTC().Format(time.RFC3339)
	case k.cred.ValidFor > 0:
		until = time.Now().Add(k.cred.ValidFor).UTC().Format(time.RFC3339)
	}
	verifier, err := scramVerifier(k.password)
	if err != nil {
		return providers.ActivateResponse{}, err
	}
	sql := "ALTER ROLE " + pgx.Identifier{k.login}.Sanitize() + " WITH LOGIN PASSWORD " + literal(verifier) + " VALID UNTIL " + literal(until)
	if _, err := conn.Exec(ctx, sql); err != nil {
		return providers.ActivateResponse{}, p.fail(ctx, k, err, "setting the password of %s", k.login)
	}
	return providers.ActivateResponse{Metadata: map[string]string{"valid_until": until}}, nil
}

// ensureLoginRole creates the login role (NOLOGIN until its password is
// set) if it is missing and makes it a member of the group role.
func (p *Provider) ensureLoginRole(ctx context.Context, conn *pgx.Conn, k call) error {
	group := k.cred.Role
	ok, err := roleExists(ctx, conn, group)
	if err != nil {
		return p.fail(ctx, k, err, "looking up group role %s", group)
	}
	if !ok {
		return fmt.Errorf("%w: group role %s does not exist; create it (CREATE ROLE %s NOLOGIN) and grant it the privileges the consumer needs",
			providers.ErrPermanent, group, pgx.Identifier{group}.Sanitize())
	}
	if ok, err = roleExists(ctx, conn, k.login); err != nil {
		return p.fail(ctx, k, err, "looking up login role %s", k.login)
	}
	if !ok {
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
	var member bool
	err = conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_auth_members m
		JOIN pg_roles g ON g.oid = m.roleid JOIN pg_roles u ON u.oid = m.member
		WHERE g.rolname = $1 AND u.rolname = $2)`, group, k.login).Scan(&member)
	if err != nil {
		return p.fail(ctx, k, err, "checking that %s is a member of %s", k.login, group)
	}
	if !member {
		if _, err := conn.Exec(ctx, "GRANT "+pgx.Identifier{group}.Sanitize()+" TO "+pgx.Identifier{k.login}.Sanitize()); err != nil {
			return p.fail(ctx, k, err, "granting %s to %s", group, k.login)
		}
		p.log.Info("granted the group role to the login role", slog.String("login_role", k.login), slog.String("group_role", group))
	}
	return nil
}

// Verify implements providers.Provider: it connects as the login role with
// the new password and runs check_query; for alternating it also checks
// that the login role is a member of the group role.
func (p *Provider) Verify(ctx context.Context, req providers.VerifyRequest) (providers.VerifyResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.VerifyResponse{}, err
	}
	k, err := p.open(req.Common, req.Value, req.Metadata)
	if err != nil {
		return providers.VerifyResponse{}, err
	}
	conn, err := p.connectAs(ctx, k)
	if err != nil {
		if isAuthFailure(err) {
			return providers.VerifyResponse{}, p.fail(ctx, k, err, "login role %s cannot log in with version %s", k.login, req.VersionID)
		}
		return providers.VerifyResponse{}, p.fail(ctx, k, err, "connecting as %s", k.login)
	}
	defer closeConn(ctx, conn)
	if _, err := conn.Exec(ctx, k.cred.CheckQuery); err != nil {
		return providers.VerifyResponse{}, p.fail(ctx, k, err, "check_query as %s", k.login)
	}
	ev := map[string]string{"login_role": k.login, "database": conn.Config().Database, "check": "logged in with the new password and ran check_query"}
	if p.cfg.Strategy == StrategyAlternating {
		var member bool
		if err := conn.QueryRow(ctx, "SELECT pg_has_role(current_user, $1, 'MEMBER')", k.cred.Role).Scan(&member); err != nil {
			return providers.VerifyResponse{}, p.fail(ctx, k, err, "checking membership of %s in %s", k.login, k.cred.Role)
		}
		if !member {
			return providers.VerifyResponse{}, fmt.Errorf("login role %s is not a member of group role %s, so it lacks the group's privileges", k.login, k.cred.Role)
		}
		ev["group_role"] = k.cred.Role
	}
	return providers.VerifyResponse{GrantedScope: req.Scope, Evidence: ev}, nil
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
	conn, err := p.connectAdmin(ctx, k)
	if err != nil {
		return err
	}
	defer closeConn(ctx, conn)
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
		login, err := p.connectAs(ctx, k)
		if err == nil {
			closeConn(ctx, login)
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
	return verifierMatches(*stored, k.login, k.password), nil
}

func (p *Provider) connectAdmin(ctx context.Context, k call) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, p.admin.Copy())
	if err != nil {
		return nil, p.fail(ctx, k, err, "connecting with admin_dsn")
	}
	return conn, nil
}

// connectAs connects with a version's credential to the credential's
// database on the admin_dsn's server.
func (p *Provider) connectAs(ctx context.Context, k call) (*pgx.Conn, error) {
	cfg := p.admin.Copy()
	cfg.User, cfg.Password = k.login, k.password
	if k.cred.Database != "" {
		cfg.Database = k.cred.Database
	}
	return pgx.ConnectConfig(ctx, cfg)
}

func closeConn(ctx context.Context, conn *pgx.Conn) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = conn.Close(cctx)
}

func roleExists(ctx context.Context, conn *pgx.Conn, name string) (bool, error) {
	var ok bool
	err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", name).Scan(&ok)
	return ok, err
}

// isAuthFailure reports whether a connection failed because the server
// refused the credential: a wrong or expired password (28P01), or a role
// that may not log in or does not exist (28000).
func isAuthFailure(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000")
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

// scramIterations matches PostgreSQL's default scram_iterations.
const scramIterations = 4096

// scramVerifier returns the SCRAM-SHA-256 verifier PostgreSQL stores for
// password (RFC 5802, RFC 7677), with a fresh random salt.
func scramVerifier(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("reading randomness: %w", err)
	}
	return scramVerifierWith(password, salt, scramIterations)
}

func scramVerifierWith(password string, salt []byte, iterations int) (string, error) {
	stored, server, err := scramKeys(password, salt, iterations)
	if err != nil {
		return "", err
	}
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored), b64(server)), nil
}

func scramKeys(password string, salt []byte, iterations int) (stored, server []byte, err error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return nil, nil, fmt.Errorf("deriving the SCRAM key: %w", err)
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	sum := sha256.Sum256(clientKey)
	return sum[:], mac(salted, "Server Key"), nil
}

// verifierMatches reports whether a pg_authid.rolpassword value is the
// password of role: a SCRAM-SHA-256 verifier, an md5 hash, or (from very
// old servers) the password itself.
func verifierMatches(stored, role, password string) bool {
	switch {
	case strings.HasPrefix(stored, "SCRAM-SHA-256$"):
		// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>
		rest := strings.TrimPrefix(stored, "SCRAM-SHA-256$")
		params, keys, ok := strings.Cut(rest, "$")
		if !ok {
			return false
		}
		iterStr, saltB64, ok1 := strings.Cut(params, ":")
		storedB64, _, ok2 := strings.Cut(keys, ":")
		iterations, err := strconv.Atoi(iterStr)
		salt, err2 := base64.StdEncoding.DecodeString(saltB64)
		want, err3 := base64.StdEncoding.DecodeString(storedB64)
		if !ok1 || !ok2 || err != nil || err2 != nil || err3 != nil || iterations <= 0 {
			return false
		}
		got, _, err := scramKeys(password, salt, iterations)
		return err == nil && subtle.ConstantTimeCompare(got, want) == 1
	case strings.HasPrefix(stored, "md5") && len(stored) == 35:
		sum := md5.Sum([]byte(password + role)) //nolint:gosec // G401: PostgreSQL's md5 verifier format
		return subtle.ConstantTimeCompare([]byte(stored[3:]), []byte(hex.EncodeToString(sum[:]))) == 1
	}
	return subtle.ConstantTimeCompare([]byte(stored), []byte(password)) == 1
}

// literal quotes s as an SQL string literal (standard_conforming_strings).
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

var _ providers.Provider = (*Provider)(nil)
