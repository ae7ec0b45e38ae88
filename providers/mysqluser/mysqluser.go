// Package mysqluser is the mysql-user provider: it rotates the password of
// a MySQL or MariaDB account through an administrative connection.
//
// Two strategies (see docs/providers.md and runbooks/mysql-user.md):
//
//   - alternating (default): the credential's user names a role holding the
//     privileges; rotator keeps two accounts <user>_a and <user>_b, each
//     granted that role as its default role, and sets each new password on
//     the one not in use. The previous account keeps working until it is
//     retired after the grace period (overlap). Privileges are granted to
//     the role once, by a person; the accounts inherit them through it, so
//     the two can never drift apart (no SHOW GRANTS replay).
//   - single: the account's own password changes; the old password stops
//     working at once (no overlap).
//
// The password is set with ALTER USER … IDENTIFIED BY '<password>', which
// cannot take a bound parameter. The statement is never logged by rotator,
// and each admin session sets sql_log_off so the server's general query log
// does not record it (MariaDB 10.11 writes it there verbatim otherwise);
// errors are scrubbed of the password, since a server error may quote the
// statement.
//
// The administrative work goes over a small pool of admin_dsn connections
// that the provider keeps for its lifetime, shared with the other providers
// of the process that have the same admin_dsn and pool size (pool.go,
// internal/connshare). Only Verify opens a connection of its own, because a
// login is what it proves. A Provider is safe for concurrent use; Close
// releases its connections.
package mysqluser

import (
	"context"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // G505: mysql_native_password is SHA1(SHA1(password)); compared, not chosen
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"regexp"
	"strings"
	"sync"

	"github.com/go-sql-driver/mysql"

	"github.com/rotatorhq/rotator/internal/connshare"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/providers"
)

// Type is the provider type name.
const Type = "mysql-user"

var factoryCapabilities = providers.Capabilities{Overlap: true, Revocable: true}

// Factory returns the registry entry of the mysql-user provider.
func Factory() providers.Factory {
	return providers.Factory{
		Description:  "MySQL and MariaDB account passwords, alternating accounts <user>_a/<user>_b sharing a role for zero-downtime rotation",
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
				return nil, fmt.Errorf("mysql-user: %w: %w", providers.ErrPermanent, errs[0])
			}
			return New(cfg, env.Logger)
		},
	}
}

// Provider rotates account passwords on one MySQL or MariaDB server.
type Provider struct {
	cfg   Config
	admin *mysql.Config // parsed admin_dsn; read only
	log   *slog.Logger

	mu     sync.Mutex
	ref    *connshare.Ref[*adminPool]
	closed bool

	warnLogOff sync.Once
}

// nopLogger keeps the driver's own messages off stderr.
type nopLogger struct{}

func (nopLogger) Print(...any) {}

// New returns a provider; it does not connect until a step needs it. Close
// it when done.
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
	if cfg.MaxAdminConnections <= 0 {
		cfg.MaxAdminConnections = DefaultMaxAdminConnections
	}
	admin, err := mysql.ParseDSN(cfg.AdminDSN.RevealString())
	if err != nil {
		// The parse error may quote the DSN: do not wrap it.
		return nil, fmt.Errorf("mysql-user: %w: admin_dsn is not a valid go-sql-driver DSN (user:password@tcp(host:3306)/ or user:password@unix(/run/mysqld/mysqld.sock)/)", providers.ErrPermanent)
	}
	admin.Logger = nopLogger{}
	return &Provider{cfg: cfg, admin: admin, log: logger}, nil
}

// Type implements providers.Provider.
func (p *Provider) Type() string { return Type }

// Capabilities implements providers.Provider: an account holds one
// password, so strategy single has no overlap.
func (p *Provider) Capabilities() providers.Capabilities { return capabilitiesOf(p.cfg) }

func capabilitiesOf(cfg Config) providers.Capabilities {
	if cfg.Strategy == StrategySingle {
		return providers.Capabilities{Overlap: false, Revocable: true}
	}
	return factoryCapabilities
}

// call is one step's view of a credential: its settings and the account
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

func (p *Provider) adminSecrets() []string {
	return []string{p.cfg.AdminDSN.RevealString(), p.admin.Passwd}
}

// open reads the account and password of a version from its value and
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
		if err != nil || u.Scheme != "mysql" || u.User == nil {
			return call{}, fmt.Errorf("version %s: %w: the value is not a mysql:// URL with a user and password", c.VersionID, providers.ErrPermanent)
		}
		k.login = u.User.Username()
		k.password, _ = u.User.Password()
	} else {
		k.password = val.RevealString()
		k.login = meta[MetaLoginUser]
		if k.login == "" {
			if p.cfg.Strategy == StrategyAlternating {
				return call{}, fmt.Errorf("version %s: %w: no %s in its metadata", c.VersionID, providers.ErrPermanent, MetaLoginUser)
			}
			k.login = cr.User
		}
	}
	if k.login == "" || k.password == "" || strings.ContainsAny(k.login+k.password, badNameChars) {
		return call{}, fmt.Errorf("version %s: %w: no valid account or no password", c.VersionID, providers.ErrPermanent)
	}
	k.secrets = append(k.secrets, val.RevealString(), k.password)
	return k, nil
}

// Mint implements providers.Provider: a random alphanumeric password for
// the account (single) or for the account not in use (alternating). It
// changes nothing at the server.
func (p *Provider) Mint(ctx context.Context, req providers.MintRequest) (providers.MintResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.MintResponse{}, err
	}
	cr, err := p.credOf(req.Common)
	if err != nil {
		return providers.MintResponse{}, err
	}
	login := cr.User
	if p.cfg.Strategy == StrategyAlternating {
		if login, err = p.nextLogin(ctx, req, cr); err != nil {
			return providers.MintResponse{}, err
		}
	}
	pwv, err := secret.Random("", p.cfg.PasswordLength, secret.Alphanumeric)
	if err != nil {
		return providers.MintResponse{}, err
	}
	val := pwv
	if p.cfg.Format == FormatURL {
		val = secret.NewString(p.url(login, pwv.RevealString(), cr.Database))
	}
	return providers.MintResponse{
		Value:        val,
		GrantedScope: req.Scope,
		Metadata: map[string]string{MetaLoginUser: login, MetaHost: cr.Host,
			MetaStrategy: p.cfg.Strategy, MetaFormat: p.cfg.Format},
	}, nil
}

// nextLogin picks the account a new alternating version goes to: the one
// the current version does not use. Without a current version it asks the
// server and avoids an account that can log in (unlocked, with a
// password), because consumers may be using it; otherwise <user>_a.
func (p *Provider) nextLogin(ctx context.Context, req providers.MintRequest, cr Cred) (string, error) {
	a, b := cr.User+"_a", cr.User+"_b"
	if req.Current != nil {
		switch req.Current.Metadata[MetaLoginUser] {
		case a:
			return b, nil
		case b:
			return a, nil
		}
	}
	k := call{cred: cr, secrets: p.adminSecrets()}
	conn, _, release, err := p.acquire(ctx, k)
	if err != nil {
		return "", err
	}
	defer release()
	st, err := p.account(ctx, conn, k, a)
	if err != nil {
		return "", err
	}
	if st.usable() {
		stb, err := p.account(ctx, conn, k, b)
		if err != nil {
			return "", err
		}
		if !stb.usable() {
			return b, nil
		}
	}
	return a, nil
}

// accountState is what SHOW CREATE USER tells about an account.
type accountState struct {
	exists, locked, hasPassword bool
	// nativeHash is the stored mysql_native_password hash ("*" and 40 hex
	// digits), empty for other plugins.
	nativeHash string
}

func (s accountState) usable() bool { return s.exists && !s.locked && s.hasPassword }

var nativeHashRE = regexp.MustCompile(`'\*[0-9A-F]{40}'`)

// account reads an account's state. The statement's output holds the
// password hash: it is parsed here and never logged.
func (p *Provider) account(ctx context.Context, conn *sql.Conn, k call, login string) (accountState, error) {
	var stmt string
	err := conn.QueryRowContext(ctx, "SHOW CREATE USER "+account(login, k.cred.Host)).Scan(&stmt)
	switch {
	case errNumber(err) == erNoSuchUser:
		return accountState{}, nil
	case err != nil:
		return accountState{}, p.fail(ctx, k, err, "reading account %s", account(login, k.cred.Host))
	}
	st := accountState{exists: true, locked: strings.Contains(stmt, " ACCOUNT LOCK")}
	st.hasPassword = strings.Contains(stmt, " IDENTIFIED ")
	if m := nativeHashRE.FindString(stmt); m != "" {
		st.nativeHash = strings.Trim(m, "'")
	}
	return st, nil
}

// nativeHash is mysql_native_password's stored form of password.
func nativeHash(password string) string {
	h1 := sha1.Sum([]byte(password)) //nolint:gosec // the server's hash, compared
	h2 := sha1.Sum(h1[:])            //nolint:gosec // idem
	return "*" + strings.ToUpper(hex.EncodeToString(h2[:]))
}

// Activate implements providers.Provider: for alternating it makes sure the
// account exists and has the role as its default role; then it sets the
// password and unlocks the account.
func (p *Provider) Activate(ctx context.Context, req providers.ActivateRequest) (providers.ActivateResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.ActivateResponse{}, err
	}
	k, err := p.open(req.Common, req.Value, req.Metadata)
	if err != nil {
		return providers.ActivateResponse{}, err
	}
	conn, pool, release, err := p.acquire(ctx, k)
	if err != nil {
		return providers.ActivateResponse{}, err
	}
	defer release()
	if err := p.quiet(ctx, conn, k); err != nil {
		return providers.ActivateResponse{}, err
	}
	acct := account(k.login, k.cred.Host)
	if p.cfg.Strategy == StrategyAlternating {
		if err := p.ensureAccount(ctx, conn, pool, k); err != nil {
			return providers.ActivateResponse{}, err
		}
	}
	// Never logged; sql_log_off keeps it out of the general log; errors
	// are scrubbed of the password.
	_, err = conn.ExecContext(ctx, "ALTER USER "+acct+" IDENTIFIED BY "+literal(k.password)+" ACCOUNT UNLOCK")
	if err != nil {
		if p.cfg.Strategy == StrategySingle && errNumber(err) == erCannotUser {
			return providers.ActivateResponse{}, fmt.Errorf("mysql-user: %w: account %s does not exist; create it (CREATE USER %s ACCOUNT LOCK) and grant it what the consumer needs",
				providers.ErrPermanent, acct, acct)
		}
		return providers.ActivateResponse{}, p.fail(ctx, k, err, "setting the password of %s", acct)
	}
	return providers.ActivateResponse{}, nil
}

// quiet turns the general query log off for this admin session
// (sql_log_off), so that ALTER USER … IDENTIFIED BY is not written there.
// An admin account that may not set it (it needs SUPER, or
// SYSTEM_VARIABLES_ADMIN on MySQL) gets a warning once, and rotation goes on.
func (p *Provider) quiet(ctx context.Context, conn *sql.Conn, k call) error {
	_, err := conn.ExecContext(ctx, "SET SESSION sql_log_off = 1")
	switch {
	case err == nil:
		return nil
	case errNumber(err) == erSpecificAccessDeny:
		p.warnLogOff.Do(func() {
			p.log.Warn("the admin account may not set sql_log_off: if the server's general query log is on, it records each new password (grant SUPER on MariaDB, SYSTEM_VARIABLES_ADMIN on MySQL, or keep general_log off)")
		})
		return nil
	}
	return p.fail(ctx, k, err, "setting sql_log_off")
}

// ensureAccount creates the alternating account (locked, without a
// password) if missing, grants it the role and makes the role its default.
// It reads the account's grants first and changes only what is missing: in
// the usual case (an account rotated before) that is one read instead of
// three writes to the privilege tables.
func (p *Provider) ensureAccount(ctx context.Context, conn *sql.Conn, pool *adminPool, k call) error {
	acct, role := account(k.login, k.cred.Host), ident(k.cred.User)
	maria, err := pool.isMariaDB(ctx, conn)
	if err != nil {
		return p.fail(ctx, k, err, "reading the server version")
	}
	g, err := p.grants(ctx, conn, k, maria)
	if err != nil {
		return err
	}
	if !g.exists {
		if _, err := conn.ExecContext(ctx, "CREATE USER IF NOT EXISTS "+acct+" ACCOUNT LOCK"); err != nil {
			return p.fail(ctx, k, err, "creating account %s", acct)
		}
		p.log.Info("created account", slog.String("account", acct), slog.String("role", k.cred.User))
	}
	if !g.hasRole {
		if _, err := conn.ExecContext(ctx, "GRANT "+role+" TO "+acct); err != nil {
			if n := errNumber(err); n == erInvalidRoleMaria || n == erUnknownAuthIDMySQL || n == erCannotUser {
				return fmt.Errorf("mysql-user: %w: role %s does not exist (or the admin account lacks ADMIN OPTION on it); create it (CREATE ROLE %s) and grant it the privileges the consumer needs",
					providers.ErrPermanent, k.cred.User, role)
			}
			return p.fail(ctx, k, err, "granting role %s to %s", k.cred.User, acct)
		}
	}
	if !g.defaultRole {
		stmt := "SET DEFAULT ROLE " + role + " TO " + acct // MySQL 8
		if maria {
			stmt = "SET DEFAULT ROLE " + role + " FOR " + acct
		}
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return p.fail(ctx, k, err, "making %s the default role of %s", k.cred.User, acct)
		}
	}
	return nil
}

// accountGrants is what SHOW GRANTS tells about an alternating account.
type accountGrants struct{ exists, hasRole, defaultRole bool }

// grants reads whether the account exists, holds the role and has it as
// default role. MySQL does not show default roles in SHOW GRANTS, so there
// defaultRole is always false (SET DEFAULT ROLE is run every time). The
// output may hold the password hash: it is parsed here and never logged.
func (p *Provider) grants(ctx context.Context, conn *sql.Conn, k call, maria bool) (accountGrants, error) {
	missing := func(err error) bool { n := errNumber(err); return n == erNoSuchGrant || n == erNoSuchUser }
	// The driver may report the error at the query or at the first row.
	rows, err := conn.QueryContext(ctx, "SHOW GRANTS FOR "+account(k.login, k.cred.Host))
	if missing(err) {
		return accountGrants{}, nil
	}
	if err != nil {
		return accountGrants{}, p.fail(ctx, k, err, "reading the grants of %s", k.login)
	}
	defer rows.Close()
	g := accountGrants{exists: true}
	role := ident(k.cred.User)
	for rows.Next() {
		var line string
		if err := rows.Scan(&line); err != nil {
			return accountGrants{}, p.fail(ctx, k, err, "reading the grants of %s", k.login)
		}
		if strings.HasPrefix(line, "GRANT "+role+" TO ") || strings.HasPrefix(line, "GRANT "+role+"@") {
			g.hasRole = true
		}
		if maria && strings.HasPrefix(line, "SET DEFAULT ROLE "+role+" FOR ") {
			g.defaultRole = true
		}
	}
	switch err := rows.Err(); {
	case missing(err):
		return accountGrants{}, nil
	case err != nil:
		return accountGrants{}, p.fail(ctx, k, err, "reading the grants of %s", k.login)
	}
	return g, nil
}

// Revoke implements providers.Provider: if the account still has this
// version's password, it locks the account and replaces the password with
// a random one nobody keeps; otherwise (the password was never set, or a
// later version replaced it, or the account is gone or locked) there is
// nothing to revoke.
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
	conn, _, release, err := p.acquire(ctx, k)
	if err != nil {
		return err
	}
	defer release()
	acct := account(k.login, k.cred.Host)
	st, err := p.account(ctx, conn, k, k.login)
	if err != nil {
		return err
	}
	if !st.exists || st.locked || !st.hasPassword {
		p.log.Debug("the account is gone or locked; nothing to revoke", slog.String("account", acct), slog.String("version", req.VersionID))
		return nil
	}
	current, err := p.hasPassword(ctx, k, st)
	if err != nil {
		return err
	}
	if !current {
		p.log.Debug("the account no longer has this version's password; nothing to revoke", slog.String("account", acct), slog.String("version", req.VersionID))
		return nil
	}
	if err := p.quiet(ctx, conn, k); err != nil {
		return err
	}
	junk := make([]byte, 24)
	_, _ = rand.Read(junk)
	k.secrets = append(k.secrets, hex.EncodeToString(junk))
	if _, err := conn.ExecContext(ctx, "ALTER USER "+acct+" IDENTIFIED BY "+literal(hex.EncodeToString(junk))+" ACCOUNT LOCK"); err != nil {
		return p.fail(ctx, k, err, "locking %s", acct)
	}
	p.log.Info("revoked: account locked and its password replaced", slog.String("account", acct), slog.String("version", req.VersionID))
	return nil
}

// hasPassword reports whether the account's password is k.password: by
// comparing mysql_native_password hashes when the account uses that
// plugin, else by logging in.
func (p *Provider) hasPassword(ctx context.Context, k call, st accountState) (bool, error) {
	if st.nativeHash != "" {
		return st.nativeHash == nativeHash(k.password), nil
	}
	_, done, err := p.login(ctx, k)
	if err == nil {
		done()
		return true, nil
	}
	if isAuthFailure(err) || errNumber(err) == erDBAccessDenied {
		return false, nil
	}
	return false, p.fail(ctx, k, err, "checking the password of %s by logging in", k.login)
}

// fail wraps err with what failed, keeps a cancelled context visible to
// errors.Is, classifies permission errors as permanent, and removes every
// secret of the call from the message.
func (p *Provider) fail(ctx context.Context, k call, err error, format string, args ...any) error {
	switch errNumber(err) {
	case erSpecificAccessDeny, erDBAccessDenied, erTableAccessDenied, erBadDB:
		err = fmt.Errorf("%w: %w", providers.ErrPermanent, err)
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %w", cerr, err)
	}
	e := fmt.Errorf("mysql-user: "+format+": %w", append(args, err)...)
	vals := make([]secret.Value, 0, len(k.secrets))
	for _, s := range k.secrets {
		vals = append(vals, secret.NewString(s))
	}
	return secret.ScrubError(e, vals...)
}

// url renders the value published with format url.
func (p *Provider) url(login, password, database string) string {
	u := url.URL{Scheme: "mysql", User: url.UserPassword(login, password)}
	if database == "" {
		database = p.admin.DBName
	}
	u.Path = "/" + database
	if p.admin.Net == "unix" {
		u.Host = "localhost"
		u.RawQuery = url.Values{"socket": {p.admin.Addr}}.Encode()
		return u.String()
	}
	host, port, err := net.SplitHostPort(p.admin.Addr)
	if err != nil {
		host, port = p.admin.Addr, "3306"
	}
	u.Host = net.JoinHostPort(host, port)
	return u.String()
}

// account renders 'user'@'host'. Names were checked to hold no quote or
// backslash (config.go), so no escaping is needed in any sql_mode.
func account(user, host string) string { return literal(user) + "@" + literal(host) }

// literal quotes s as a string literal; s holds no quote or backslash
// (checked names, alphanumeric or hex passwords).
func literal(s string) string { return "'" + s + "'" }

// ident quotes a role name with backticks (it holds none).
func ident(s string) string { return "`" + s + "`" }

var _ providers.Provider = (*Provider)(nil)
