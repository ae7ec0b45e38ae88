package postgres

import (
	"context"
	"fmt"
	"net"
	"strconv"

	"github.com/rotatorhq/rotator/providers"
)

// Probe implements providers.Prober: it connects with admin_dsn and reads
// the admin role's attributes, proving that the server is reachable, that
// it accepts admin_dsn's credentials, and that the role may manage other
// roles (SUPERUSER, or CREATEROLE). It changes nothing.
func (p *Provider) Probe(ctx context.Context, _ providers.ProbeRequest) (providers.ProbeResponse, error) {
	where := p.admin.Host
	if where != "" && where[0] != '/' {
		where = net.JoinHostPort(p.admin.Host, strconv.Itoa(int(p.admin.Port)))
	}
	k := call{secrets: p.adminSecrets()}
	conn, release, err := p.acquire(ctx, k)
	if err != nil {
		fix := fmt.Sprintf("check that the server at %s is running and reachable from this host (address, port, firewall, TLS settings of admin_dsn)", where)
		if isAuthFailure(err) {
			fix = "the server refused admin_dsn's role or password: correct the secret its reference points to, or the role's password or pg_hba.conf rule"
		}
		return providers.ProbeResponse{}, providers.NewProbeError(err, fix)
	}
	defer release()
	var (
		user              string
		super, createRole bool
		version           string
	)
	err = conn.QueryRow(ctx, `SELECT current_user, r.rolsuper, r.rolcreaterole, current_setting('server_version')
		FROM pg_roles r WHERE r.rolname = current_user`).Scan(&user, &super, &createRole, &version)
	if err != nil {
		return providers.ProbeResponse{}, providers.NewProbeError(p.fail(ctx, k, err, "reading the admin role's attributes"),
			"the admin role must be able to read pg_roles; check the role admin_dsn names")
	}
	res := providers.ProbeResponse{Checked: []string{
		fmt.Sprintf("connected to %s (PostgreSQL %s) as %s with admin_dsn", where, version, user),
	}}
	switch {
	case super:
		res.Checked = append(res.Checked, user+" is a superuser: it may alter and create every role")
	case createRole:
		res.Checked = append(res.Checked, user+" has CREATEROLE")
		res.Unproven = append(res.Unproven, "that "+user+" holds ADMIN OPTION on each credential's role (checked by the first rotation)")
	default:
		return res, providers.NewProbeError(
			fmt.Errorf("postgres-role: %s: the admin role %s has neither SUPERUSER nor CREATEROLE, so it cannot change passwords of other roles: %w", where, user, providers.ErrPermanent),
			fmt.Sprintf("ALTER ROLE %s CREATEROLE, and GRANT each managed role to it WITH ADMIN OPTION (PostgreSQL 16+)", user))
	}
	return res, nil
}

var _ providers.Prober = (*Provider)(nil)
