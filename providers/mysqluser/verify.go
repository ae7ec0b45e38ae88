package mysqluser

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/rotatorhq/rotator/providers"
)

// Verify implements providers.Provider: it logs in as the account with the
// new password on a new connection (host, port and TLS settings of
// admin_dsn), runs check_query and, for alternating, checks that the role
// is active in the session (it is the account's default role).
func (p *Provider) Verify(ctx context.Context, req providers.VerifyRequest) (providers.VerifyResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.VerifyResponse{}, err
	}
	k, err := p.open(req.Common, req.Value, req.Metadata)
	if err != nil {
		return providers.VerifyResponse{}, err
	}
	conn, done, err := p.login(ctx, k)
	if err != nil {
		if isAuthFailure(err) {
			return providers.VerifyResponse{}, p.fail(ctx, k, err, "account %s cannot log in with version %s", k.login, req.VersionID)
		}
		return providers.VerifyResponse{}, p.fail(ctx, k, err, "connecting as %s", k.login)
	}
	defer done()
	if err := runCheck(ctx, conn, k.cred.CheckQuery); err != nil {
		return providers.VerifyResponse{}, p.fail(ctx, k, err, "check_query as %s", k.login)
	}
	ev := map[string]string{"login_user": k.login, "host": k.cred.Host,
		"check": "logged in with the new password on a new connection and ran check_query"}
	if k.cred.Database != "" {
		ev["database"] = k.cred.Database
	}
	if p.cfg.Strategy == StrategyAlternating {
		var role sql.NullString
		if err := conn.QueryRowContext(ctx, "SELECT CURRENT_ROLE()").Scan(&role); err != nil {
			return providers.VerifyResponse{}, p.fail(ctx, k, err, "reading the current role of %s", k.login)
		}
		if !hasRole(role.String, k.cred.User) {
			return providers.VerifyResponse{}, fmt.Errorf("mysql-user: account %s logs in without role %s active (its default role is %q), so it lacks the role's privileges",
				k.login, k.cred.User, role.String)
		}
		ev["role"] = k.cred.User
	}
	return providers.VerifyResponse{GrantedScope: req.Scope, Evidence: ev}, nil
}

// runCheck runs the check query and reads its rows to the end.
func runCheck(ctx context.Context, conn *sql.Conn, q string) error {
	rows, err := conn.QueryContext(ctx, q)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
	}
	return rows.Err()
}

// hasRole reports whether CURRENT_ROLE()'s result names role: MariaDB
// returns the role name, MySQL 8 a list of `role`@`host`.
func hasRole(current, role string) bool {
	for _, r := range strings.Split(current, ",") {
		r = strings.TrimSpace(r)
		if r == role || strings.HasPrefix(r, "`"+role+"`@") {
			return true
		}
	}
	return false
}
