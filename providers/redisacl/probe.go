package redisacl

import (
	"context"
	"fmt"
	"strings"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/providers"
)

// Probe implements providers.Prober: on an admin connection (which
// authenticates with username and password) it asks ACL WHOAMI, then, on
// Redis 7 and later, ACL DRYRUN whether that user may run ACL SETUSER and
// ACL GETUSER, the commands rotation sends. It changes nothing.
func (p *Provider) Probe(ctx context.Context, _ providers.ProbeRequest) (providers.ProbeResponse, error) {
	var none secret.Value
	c, done, err := p.admin(ctx, none)
	if err != nil {
		return providers.ProbeResponse{}, providers.NewProbeError(err, "")
	}
	defer done()
	who, err := c.Do(ctx, "ACL", "WHOAMI").Text()
	if err != nil {
		fix := fmt.Sprintf("check that Redis at %s is running and reachable from this host (addr, tls)", p.cfg.Addr)
		if isWrongPass(err) {
			fix = "Redis refused username/password: correct the secret the password reference points to, or the ACL user"
		} else if isNoPerm(err) {
			fix = "allow the admin user ACL commands (ACL SETUSER <user> +acl)"
		}
		return providers.ProbeResponse{}, providers.NewProbeError(p.fail(ctx, none, err, "ACL WHOAMI"), fix)
	}
	res := providers.ProbeResponse{Checked: []string{fmt.Sprintf("authenticated to Redis at %s as %s", p.cfg.Addr, who)}}
	major, err := serverMajor(ctx, c)
	if err != nil {
		return res, providers.NewProbeError(p.fail(ctx, none, err, "INFO server"), "allow the admin user INFO (+info): rotation reads the server version")
	}
	if major < 7 {
		res.Unproven = append(res.Unproven, fmt.Sprintf("that %s may run ACL SETUSER and ACL GETUSER (Redis %d has no ACL DRYRUN; the first rotation shows it)", who, major))
		return res, nil
	}
	for _, cmd := range [][]any{{"ACL", "SETUSER", "rotator-probe"}, {"ACL", "GETUSER", "rotator-probe"}} {
		name := fmt.Sprint(cmd[0], " ", cmd[1])
		reply, err := c.Do(ctx, append([]any{"ACL", "DRYRUN", who}, cmd...)...).Text()
		switch {
		case isNoPerm(err):
			res.Unproven = append(res.Unproven, fmt.Sprintf("that %s may run %s (it may not run ACL DRYRUN to ask)", who, name))
			continue
		case err != nil:
			return res, providers.NewProbeError(p.fail(ctx, none, err, "ACL DRYRUN %s %s", who, name), "")
		case reply != "OK":
			return res, providers.NewProbeError(
				fmt.Errorf("redis-acl %s: user %s may not run %s: %s: %w", p.cfg.Addr, who, name, strings.TrimSpace(reply), providers.ErrPermanent),
				fmt.Sprintf("allow it: ACL SETUSER %s +acl|setuser +acl|getuser +info", who))
		}
		res.Checked = append(res.Checked, fmt.Sprintf("%s may run %s (ACL DRYRUN)", who, name))
	}
	return res, nil
}

var _ providers.Prober = (*Provider)(nil)
