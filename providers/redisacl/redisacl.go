// Package redisacl is the redis-acl provider: it rotates the password of a
// Redis ACL user (Redis 6.2 or later; 7 or later for selectors).
//
// A Redis user may have several passwords at once, so rotation has overlap:
// Activate adds the new password beside the old one, consumers move to it
// at cutover, and Revoke removes the old one after the grace period.
// Passwords are sent to Redis as their SHA-256 (ACL SETUSER #<hash> and
// !<hash>), which is what Redis stores anyway, so the plaintext never
// reaches the server, its MONITOR stream or its slow log.
//
// The administrative commands go over a small pool of connections
// authenticated as the admin user, kept for the provider's lifetime and
// shared with the other providers of the process configured alike
// (pool.go, internal/connshare; max_admin_connections, default 4). Only Verify opens a
// connection of its own, because authenticating on a new connection is
// what it proves. A Provider is safe for concurrent use; Close releases
// its connections.
package redisacl

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"

	"github.com/rotatorhq/rotator/internal/connshare"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/providers"
)

// Type is the provider type name.
const Type = "redis-acl"

// MetaUser is the metadata key naming the ACL user of a version.
const MetaUser = "user"

var capabilities = providers.Capabilities{Overlap: true, Revocable: true}

// Factory returns the registry entry of the redis-acl provider.
func Factory() providers.Factory {
	return providers.Factory{
		Description:        "Redis ACL user passwords; several at once, so rotation has overlap",
		Capabilities:       capabilities,
		ValidateProvider:   ValidateProvider,
		ValidateCredential: ValidateCredential,
		New: func(_ context.Context, env providers.Env) (providers.Provider, error) {
			cfg, errs := parse(env.Settings)
			if len(errs) > 0 {
				return nil, fmt.Errorf("redis-acl: %w: %w", providers.ErrPermanent, errs[0])
			}
			return New(cfg, env.Logger), nil
		},
	}
}

// Provider rotates ACL user passwords on one Redis server. It is safe for
// concurrent use.
type Provider struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	ref    *connshare.Ref[*pool] // taken at the first admin call
	closed bool
}

// New returns a provider; it connects only when a step needs it. Close it
// when done, to release its admin connections.
func New(cfg Config, logger *slog.Logger) *Provider {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.PasswordLength == 0 {
		cfg.PasswordLength = 40
	}
	if cfg.MaxAdminConnections <= 0 {
		cfg.MaxAdminConnections = DefaultMaxAdminConnections
	}
	return &Provider{cfg: cfg, log: logger}
}

// Type implements providers.Provider.
func (p *Provider) Type() string { return Type }

// Capabilities implements providers.Provider.
func (p *Provider) Capabilities() providers.Capabilities { return capabilities }

func (p *Provider) credOf(c providers.Common) (Cred, error) {
	cr, errs := parseCred(c.Settings)
	if len(errs) > 0 {
		return Cred{}, fmt.Errorf("credential %s settings: %w: %w", c.CredentialID, providers.ErrPermanent, errs[0])
	}
	return cr, nil
}

// admin returns a pooled admin client for one call; call done when the
// call is over.
func (p *Provider) admin(ctx context.Context, val secret.Value) (c *redis.Client, done func(), err error) {
	pl, err := p.shared()
	if err != nil {
		return nil, nil, err
	}
	c, done, err = pl.get(ctx)
	if err != nil && !errors.Is(err, ErrClosed) {
		err = p.fail(ctx, val, err, "waiting for an admin connection")
	}
	return c, done, err
}

// Mint implements providers.Provider: a random alphanumeric password. It
// changes nothing at the server.
func (p *Provider) Mint(ctx context.Context, req providers.MintRequest) (providers.MintResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.MintResponse{}, err
	}
	cr, err := p.credOf(req.Common)
	if err != nil {
		return providers.MintResponse{}, err
	}
	pwv, err := secret.Random("", p.cfg.PasswordLength, secret.Alphanumeric)
	pw := pwv.RevealString()
	if err != nil {
		return providers.MintResponse{}, err
	}
	return providers.MintResponse{Value: secret.NewString(pw), GrantedScope: req.Scope, Metadata: map[string]string{MetaUser: cr.User}}, nil
}

// Activate implements providers.Provider: ACL SETUSER <user> on #<sha256>,
// followed, when the credential declares rules, by resetkeys resetchannels
// -@all (and clearselectors on Redis 7) and the rules, so the user's
// permissions are exactly the declared ones. Existing passwords stay. The
// command is atomic: no client sees a half-applied user. Running it again
// changes nothing.
func (p *Provider) Activate(ctx context.Context, req providers.ActivateRequest) (providers.ActivateResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.ActivateResponse{}, err
	}
	cr, err := p.credOf(req.Common)
	if err != nil {
		return providers.ActivateResponse{}, err
	}
	if req.Value.IsZero() {
		return providers.ActivateResponse{}, fmt.Errorf("version %s: %w: empty value", req.VersionID, providers.ErrPermanent)
	}
	c, done, err := p.admin(ctx, req.Value)
	if err != nil {
		return providers.ActivateResponse{}, err
	}
	defer done()
	args := []any{"ACL", "SETUSER", cr.User, "on", "#" + hash(req.Value)}
	if len(cr.Rules) > 0 {
		args = append(args, "resetkeys", "resetchannels", "-@all")
		major, err := serverMajor(ctx, c)
		if err != nil {
			return providers.ActivateResponse{}, p.fail(ctx, req.Value, err, "reading the server version")
		}
		if major >= 7 {
			args = append(args, "clearselectors")
		}
		for _, r := range cr.Rules {
			args = append(args, r)
		}
	}
	if err := c.Do(ctx, args...).Err(); err != nil {
		return providers.ActivateResponse{}, p.fail(ctx, req.Value, err, "ACL SETUSER %s (adding the new password)", cr.User)
	}
	return providers.ActivateResponse{}, nil
}

// Verify implements providers.Provider: it opens a fresh connection that
// authenticates as the user with the new password (AUTH user password) and
// sends PING. A PING refused by the user's rules (NOPERM) still proves the
// password: the server accepted AUTH before it checked the command.
func (p *Provider) Verify(ctx context.Context, req providers.VerifyRequest) (providers.VerifyResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.VerifyResponse{}, err
	}
	cr, err := p.credOf(req.Common)
	if err != nil {
		return providers.VerifyResponse{}, err
	}
	c, done := p.client(ctx, cr.User, req.Value.RevealString())
	defer done()
	ev := map[string]string{"user": cr.User, "check": "AUTH with the new password on a fresh connection, then PING"}
	err = c.Ping(ctx).Err()
	switch {
	case err == nil:
	case isNoPerm(err):
		ev["check"] = "AUTH with the new password on a fresh connection; PING is not permitted by the user's rules"
	case isWrongPass(err):
		return providers.VerifyResponse{}, p.fail(ctx, req.Value, err, "user %s cannot authenticate with version %s", cr.User, req.VersionID)
	default:
		return providers.VerifyResponse{}, p.fail(ctx, req.Value, err, "connecting as %s", cr.User)
	}
	return providers.VerifyResponse{GrantedScope: req.Scope, Evidence: ev}, nil
}

// Revoke implements providers.Provider: it removes the version's password
// from the user (ACL SETUSER <user> !<sha256>). A user that does not exist
// or no longer has that password is left alone (ACL SETUSER would create
// the one and fail on the other). Connections already authenticated with
// the password stay open until they reconnect, as Redis does for every
// password change.
func (p *Provider) Revoke(ctx context.Context, req providers.RevokeRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if req.Value.IsZero() {
		return nil
	}
	cr, err := p.credOf(req.Common)
	if err != nil {
		return err
	}
	user := cr.User
	if u := req.Metadata[MetaUser]; u != "" {
		user = u // the user the version was minted for
	}
	c, done, err := p.admin(ctx, req.Value)
	if err != nil {
		return err
	}
	defer done()
	h := hash(req.Value)
	has, exists, err := hasPassword(ctx, c, user, h)
	if err != nil {
		return p.fail(ctx, req.Value, err, "ACL GETUSER %s", user)
	}
	if !exists || !has {
		p.log.Debug("the user no longer has this version's password; nothing to revoke", slog.String("user", user), slog.String("version", req.VersionID))
		return nil
	}
	err = c.Do(ctx, "ACL", "SETUSER", user, "!"+h).Err()
	if err != nil && !strings.Contains(err.Error(), "does not exist") {
		return p.fail(ctx, req.Value, err, "ACL SETUSER %s (removing the old password)", user)
	}
	p.log.Info("revoked: password removed from the user", slog.String("user", user), slog.String("version", req.VersionID))
	return nil
}

// hasPassword reads ACL GETUSER and reports whether the user exists and has
// the password whose SHA-256 is h.
func hasPassword(ctx context.Context, c *redis.Client, user, h string) (has, exists bool, err error) {
	res, err := c.Do(ctx, "ACL", "GETUSER", user).Result()
	if errors.Is(err, redis.Nil) {
		return false, false, nil
	}
	if err != nil {
		return false, false, err
	}
	var passwords any
	switch m := res.(type) {
	case []any: // RESP2: flat key/value list
		for i := 0; i+1 < len(m); i += 2 {
			if k, _ := m[i].(string); k == "passwords" {
				passwords = m[i+1]
			}
		}
	case map[any]any: // RESP3
		passwords = m["passwords"]
	case nil:
		return false, false, nil
	default:
		return false, true, fmt.Errorf("unexpected ACL GETUSER reply %T", res)
	}
	list, _ := passwords.([]any)
	return slices.ContainsFunc(list, func(x any) bool { s, _ := x.(string); return s == h }), true, nil
}

// serverMajor returns the major version of the server (INFO server).
func serverMajor(ctx context.Context, c *redis.Client) (int, error) {
	info, err := c.Info(ctx, "server").Result()
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
			var major int
			_, _ = fmt.Sscanf(v, "%d", &major)
			return major, nil
		}
	}
	return 0, nil
}

func isWrongPass(err error) bool {
	return err != nil && (strings.HasPrefix(err.Error(), "WRONGPASS") || strings.Contains(err.Error(), "invalid username-password pair"))
}

func isNoPerm(err error) bool { return err != nil && strings.HasPrefix(err.Error(), "NOPERM") }

// hash is how Redis stores a password: hex SHA-256.
func hash(v secret.Value) string {
	sum := sha256.Sum256(v.Reveal())
	return hex.EncodeToString(sum[:])
}

// fail wraps err with what failed, keeps a cancelled context visible to
// errors.Is, marks permission errors permanent, and removes the value and
// the admin password from the message.
func (p *Provider) fail(ctx context.Context, val secret.Value, err error, format string, args ...any) error {
	if isNoPerm(err) || (isWrongPass(err) && !strings.Contains(format, "cannot authenticate")) {
		err = fmt.Errorf("%w: %w", providers.ErrPermanent, err)
	}
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		err = fmt.Errorf("%w: %w", cerr, err)
	}
	e := fmt.Errorf("redis-acl %s: "+format+": %w", append([]any{p.cfg.Addr}, append(args, err)...)...)
	return secret.ScrubError(e, val, p.cfg.Password, secret.NewString(hash(val)))
}

var _ providers.Provider = (*Provider)(nil)
