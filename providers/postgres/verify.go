package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotatorhq/rotator/providers"
)

// ErrVerifierUnreadable is wrapped by the error of a verify: verifier
// verification whose admin role may not read pg_authid.rolpassword.
var ErrVerifierUnreadable = errors.New("the admin role cannot read pg_authid")

// Verify implements providers.Provider. With verify: login (the default)
// it connects as the login role with the new password, runs check_query
// and, for alternating, checks membership of the group role. With verify:
// verifier it checks the stored verifier over an admin connection instead
// (verifyStored).
func (p *Provider) Verify(ctx context.Context, req providers.VerifyRequest) (providers.VerifyResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.VerifyResponse{}, err
	}
	k, err := p.open(req.Common, req.Value, req.Metadata)
	if err != nil {
		return providers.VerifyResponse{}, err
	}
	if p.cfg.Verify == VerifyVerifier {
		return p.verifyStored(ctx, req, k)
	}
	conn, done, err := p.login(ctx, k)
	if err != nil {
		if isAuthFailure(err) {
			return providers.VerifyResponse{}, p.fail(ctx, k, err, "login role %s cannot log in with version %s", k.login, req.VersionID)
		}
		return providers.VerifyResponse{}, p.fail(ctx, k, err, "connecting as %s", k.login)
	}
	defer done()
	if _, err := conn.Exec(ctx, k.cred.CheckQuery); err != nil {
		return providers.VerifyResponse{}, p.fail(ctx, k, err, "check_query as %s", k.login)
	}
	ev := map[string]string{"login_role": k.login, "database": conn.Config().Database, "verify": VerifyLogin,
		"check": "logged in with the new password on a new connection and ran check_query"}
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

// verifierQuery reads, in one round trip, what a login as $1 into database
// $3 depends on besides pg_hba.conf: the stored verifier, LOGIN, VALID
// UNTIL, the connection limit, CONNECT on the database and (when $2 is not
// empty) membership of the group role $2. It reads only the pg_authid
// columns the documented column grant gives (oid, rolname, rolpassword,
// rolcanlogin, rolvaliduntil, rolconnlimit).
const verifierQuery = `SELECT a.rolpassword, a.rolcanlogin,
	a.rolvaliduntil IS NULL OR a.rolvaliduntil > now(),
	to_char(a.rolvaliduntil AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
	a.rolconnlimit <> 0,
	has_database_privilege(a.oid, $3::text, 'CONNECT'),
	$2::text = '' OR coalesce(pg_has_role(a.oid, (SELECT oid FROM pg_roles WHERE rolname = $2::text), 'MEMBER'), false)
	FROM pg_authid a WHERE a.rolname = $1`

// verifyStored checks the new password against the role's stored
// SCRAM-SHA-256 verifier without logging in: it derives StoredKey and
// ServerKey from the password with the stored salt and iteration count, as
// the server does at a SCRAM login, and compares them with the stored ones.
// It also checks what else a login needs that the catalogs show. What it
// cannot prove is that pg_hba.conf lets the role in from where consumers
// connect, and that check_query works (docs/providers.md).
func (p *Provider) verifyStored(ctx context.Context, req providers.VerifyRequest, k call) (providers.VerifyResponse, error) {
	conn, release, err := p.acquire(ctx, k)
	if err != nil {
		return providers.VerifyResponse{}, err
	}
	defer release()
	database := k.cred.Database
	if database == "" {
		database = p.admin.Database
	}
	group := ""
	if p.cfg.Strategy == StrategyAlternating {
		group = k.cred.Role
	}
	var (
		stored                           *string
		canLogin, valid, connOK, connect bool
		member                           bool
		validUntil                       *string
	)
	err = conn.QueryRow(ctx, verifierQuery, k.login, group, database).
		Scan(&stored, &canLogin, &valid, &validUntil, &connOK, &connect, &member)
	var pgErr *pgconn.PgError
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return providers.VerifyResponse{}, fmt.Errorf("postgres-role: login role %s does not exist, so version %s cannot log in", k.login, req.VersionID)
	case errors.As(err, &pgErr) && pgErr.Code == "42501": // insufficient_privilege
		return providers.VerifyResponse{}, fmt.Errorf("postgres-role: %w: %w: verify: verifier reads the stored password of %s from pg_authid, which the admin_dsn role %s may not read. "+
			"Make it a superuser, or have a superuser run GRANT SELECT (oid, rolname, rolpassword, rolcanlogin, rolvaliduntil, rolconnlimit) ON pg_authid TO %s; or set verify: login",
			providers.ErrPermanent, ErrVerifierUnreadable, k.login, p.admin.User, pgx.Identifier{p.admin.User}.Sanitize())
	case err != nil:
		return providers.VerifyResponse{}, p.fail(ctx, k, err, "reading the stored verifier of %s", k.login)
	}
	fails := func(format string, args ...any) error {
		return fmt.Errorf("postgres-role: login role %s cannot log in with version %s: "+format, append([]any{k.login, req.VersionID}, args...)...)
	}
	if stored == nil {
		return providers.VerifyResponse{}, fails("the role has no password")
	}
	// A verifier this instance derived from the password (at Activate)
	// matches it without a second derivation.
	match := p.derived.known(*stored, k.password)
	if !match {
		v, err := parseSCRAM(*stored)
		if err != nil {
			return providers.VerifyResponse{}, fails("its stored password is %v; rotator sets SCRAM-SHA-256 verifiers, so it was changed by something else", err)
		}
		match = v.matches(k.password)
	}
	switch {
	case !match:
		return providers.VerifyResponse{}, fails("the stored SCRAM-SHA-256 verifier does not match the new password (it was changed since activation, or activation did not take)")
	case !canLogin:
		return providers.VerifyResponse{}, fails("the role has NOLOGIN")
	case !valid:
		return providers.VerifyResponse{}, fails("its password expired (VALID UNTIL %s)", deref(validUntil))
	case !connOK:
		return providers.VerifyResponse{}, fails("its connection limit is 0")
	case !connect:
		return providers.VerifyResponse{}, fails("it has no CONNECT privilege on database %s", database)
	case !member:
		return providers.VerifyResponse{}, fmt.Errorf("login role %s is not a member of group role %s, so it lacks the group's privileges", k.login, k.cred.Role)
	}
	ev := map[string]string{"login_role": k.login, "database": database, "verify": VerifyVerifier,
		"check": "the stored SCRAM-SHA-256 verifier matches the new password (StoredKey and ServerKey); LOGIN, VALID UNTIL, connection limit and CONNECT allow a login; no login was made, so pg_hba.conf and check_query were not tested"}
	if group != "" {
		ev["group_role"] = group
	}
	return providers.VerifyResponse{GrantedScope: req.Scope, Evidence: ev}, nil
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
