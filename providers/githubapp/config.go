package githubapp

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
)

// DefaultBaseURL is the REST API of github.com.
const DefaultBaseURL = "https://api.github.com"

// DefaultTimeout bounds every request to the GitHub API when `timeout` is
// not set.
const DefaultTimeout = 30 * time.Second

// TokenLifetime is how long GitHub keeps an installation access token valid.
const TokenLifetime = time.Hour

// Config is the configuration of a github-app provider.
type Config struct {
	// AppID is the GitHub App's id (a number) or client id (Iv1.…, Iv23…),
	// the issuer of the app's JWTs.
	AppID string
	// PrivateKey is the app's private key (PEM), from a reference.
	PrivateKey secret.Value
	// InstallationID is the installation tokens are minted for.
	InstallationID string
	// Repositories, when set, limits every token to these repositories
	// (names, without the owner). Empty means every repository the
	// installation can reach.
	Repositories []string
	// BaseURL is the REST API root: https://api.github.com, or
	// https://HOST/api/v3 for GitHub Enterprise Server.
	BaseURL string
	// Timeout bounds each request.
	Timeout time.Duration
	// InsecureHTTP allows a plain-http base_url to a host other than the
	// loopback interface.
	InsecureHTTP bool
}

var defaults = Config{BaseURL: DefaultBaseURL, Timeout: DefaultTimeout}

type level int

const (
	providerLevel   level = iota // every field
	credentialLevel              // installation_id and repositories only
)

var (
	numericID = regexp.MustCompile(`^[1-9][0-9]{0,19}$`)
	clientID  = regexp.MustCompile(`^Iv[0-9A-Za-z.]{4,64}$`)
	// repoName is GitHub's rule for repository names.
	repoName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,100}$`)
)

// parse reads settings over base. A credential may override
// installation_id and repositories; everything else is the provider's.
func parse(s settings.Map, base Config, lvl level) (Config, settings.Errors) {
	r := settings.NewReader(s)
	c := base
	if lvl == providerLevel {
		c.InsecureHTTP = r.Bool("insecure_http", base.InsecureHTTP)
		c.AppID = r.RequiredString("app_id")
		if c.AppID != "" && !numericID.MatchString(c.AppID) && !clientID.MatchString(c.AppID) {
			r.Fail("app_id", "must be the GitHub App's numeric id (such as 123456) or its client id (such as Iv23liAbCdEf), from the app's settings page")
		}
		c.PrivateKey = r.Secret("private_key")
		if c.PrivateKey.IsZero() && !r.Has("private_key") {
			r.Fail("private_key", "is required: a reference to the app's PEM private key, such as ${file:/run/secrets/github-app.pem}")
		}
		c.BaseURL = strings.TrimRight(r.String("base_url", base.BaseURL), "/")
		r.HTTPURL("base_url", c.BaseURL, settings.URLRule{Example: "https://api.github.com or https://github.example.com/api/v3", Bare: true, Required: true, InsecureHTTP: c.InsecureHTTP})
		c.Timeout = r.Duration("timeout", base.Timeout)
		if c.Timeout <= 0 {
			r.Fail("timeout", "must be positive")
			c.Timeout = DefaultTimeout
		}
	}
	c.InstallationID = r.String("installation_id", base.InstallationID)
	if c.InstallationID == "" && lvl == providerLevel {
		r.Fail("installation_id", "is required: the installation's id, the number at the end of https://github.com/organizations/ORG/settings/installations/ID")
	} else if c.InstallationID != "" && !numericID.MatchString(c.InstallationID) {
		r.Fail("installation_id", "must be a number such as 12345678, got %q", c.InstallationID)
	}
	c.Repositories = r.Strings("repositories", base.Repositories)
	for i, name := range c.Repositories {
		if strings.Contains(name, "/") {
			r.Fail(fmt.Sprintf("repositories[%d]", i), "must be a repository name without its owner (%q, not %q): the installation fixes the owner", name[strings.LastIndex(name, "/")+1:], name)
		} else if !repoName.MatchString(name) {
			r.Fail(fmt.Sprintf("repositories[%d]", i), "must be a repository name of letters, digits, '-', '_' and '.', got %q", name)
		}
	}
	if len(c.Repositories) > 500 {
		r.Fail("repositories", "names %d repositories; GitHub allows at most 500 per token", len(c.Repositories))
	}
	r.Unknown()
	return c, r.Errors()
}

// ValidateProvider checks provider-level settings without resolving
// references or contacting anything.
func ValidateProvider(s settings.Map) settings.Errors {
	_, errs := parse(s, defaults, providerLevel)
	return errs
}

// ValidateCredential checks per-credential settings: installation_id and
// repositories may override the provider's.
func ValidateCredential(s settings.Map) settings.Errors {
	_, errs := parse(s, defaults, credentialLevel)
	return errs
}

// parsePrivateKey reads an RSA private key in PEM form (PKCS #1, as GitHub
// issues it, or PKCS #8). Errors never contain the key.
func parsePrivateKey(v secret.Value) (*rsa.PrivateKey, error) {
	block, _ := pem.Decode(v.Reveal())
	if block == nil {
		return nil, errors.New("is not a PEM private key (expected -----BEGIN RSA PRIVATE KEY----- as GitHub issues it)")
	}
	var key *rsa.PrivateKey
	switch block.Type {
	case "RSA PRIVATE KEY":
		k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("holds an RSA PRIVATE KEY block that does not parse as PKCS #1")
		}
		key = k
	case "PRIVATE KEY":
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, errors.New("holds a PRIVATE KEY block that does not parse as PKCS #8")
		}
		rk, ok := k.(*rsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("holds a %T key; GitHub Apps sign with RSA keys", k)
		}
		key = rk
	default:
		return nil, fmt.Errorf("holds a PEM block of type %q, want RSA PRIVATE KEY or PRIVATE KEY", block.Type)
	}
	if key.N.BitLen() < 2048 {
		return nil, fmt.Errorf("is a %d-bit RSA key; GitHub Apps use 2048-bit keys or longer", key.N.BitLen())
	}
	return key, nil
}

// Permission levels, narrowest first.
const (
	levelRead  = "read"
	levelWrite = "write"
	levelAdmin = "admin"
)

// permissions lists the permission names an installation access token may
// request (GitHub's app-permissions schema) and the levels each allows.
var permissions = func() map[string][]string {
	rw := []string{levelRead, levelWrite}
	m := map[string][]string{}
	for _, name := range []string{
		// repository permissions
		"actions", "administration", "attestations", "checks", "codespaces", "contents", "custom_properties_for_organizations",
		"dependabot_secrets", "deployments", "discussions", "environments", "issues", "merge_queues", "metadata", "packages", "pages",
		"pull_requests", "repository_custom_properties", "repository_hooks", "repository_projects", "secret_scanning_alerts",
		"secrets", "security_events", "single_file", "statuses", "vulnerability_alerts", "workflows",
		// organization permissions
		"members", "organization_administration", "organization_announcement_banners", "organization_copilot_seat_management",
		"organization_custom_org_roles", "organization_custom_roles", "organization_events", "organization_hooks",
		"organization_packages", "organization_personal_access_token_requests", "organization_personal_access_tokens",
		"organization_plan", "organization_secrets", "organization_self_hosted_runners", "organization_user_blocking",
		"team_discussions",
		// account permissions
		"email_addresses", "followers", "git_ssh_keys", "gpg_keys", "interaction_limits", "profile", "starring",
	} {
		m[name] = rw
	}
	m["organization_projects"] = []string{levelRead, levelWrite, levelAdmin}
	m["organization_custom_properties"] = []string{levelRead, levelWrite, levelAdmin}
	return m
}()

// ScopeMetadata is the permission GitHub grants with every installation
// token; a credential declares it so that the granted scope matches.
const ScopeMetadata = "metadata:read"

// ParseScope turns a credential's scope (`contents:read`, `issues:write`)
// into the permissions object of an access-token request. Each entry must
// name a known permission and a level it allows, at most once; the scope
// must be non-empty (an empty permissions object would get every permission
// of the installation) and must declare metadata:read, which GitHub grants
// with every token.
func ParseScope(scope []string) (map[string]string, settings.Errors) {
	var errs settings.Errors
	fail := func(i int, format string, args ...any) {
		errs = append(errs, settings.Error{Field: fmt.Sprintf("[%d]", i), Msg: fmt.Sprintf(format, args...)})
	}
	if len(scope) == 0 {
		return nil, settings.Errors{{Msg: "is empty; a github-app credential declares the permissions its tokens get, such as [metadata:read, contents:read, issues:write] (without them a token gets every permission of the installation)"}}
	}
	perms := map[string]string{}
	for i, s := range scope {
		name, lvl, ok := strings.Cut(s, ":")
		if !ok {
			fail(i, "%q is not PERMISSION:LEVEL, such as contents:read or issues:write", s)
			continue
		}
		levels, known := permissions[name]
		switch {
		case !known:
			fail(i, "%q names no GitHub App permission; valid names are %s", name, validNames(name))
		case !slices.Contains(levels, lvl):
			fail(i, "permission %s has no level %q; valid levels are %s", name, lvl, strings.Join(levels, ", "))
		case perms[name] != "":
			fail(i, "permission %s is declared twice (%s and %s); declare one level", name, perms[name], lvl)
		default:
			perms[name] = lvl
		}
	}
	if len(errs) == 0 && perms["metadata"] == "" {
		errs = append(errs, settings.Error{Msg: "lacks metadata:read, which GitHub grants with every installation token; declare it so that the granted scope matches the declared one"})
	}
	return perms, errs
}

// ValidateScope checks a credential's declared scope (see ParseScope).
func ValidateScope(scope []string) settings.Errors {
	_, errs := ParseScope(scope)
	return errs
}

// validNames lists the known permission names, those sharing a prefix with
// bad first, shortened.
func validNames(bad string) string {
	names := make([]string, 0, len(permissions))
	for n := range permissions {
		names = append(names, n)
	}
	sort.Strings(names)
	var near []string
	for _, n := range names {
		if strings.HasPrefix(n, bad[:min(3, len(bad))]) || strings.HasPrefix(bad, n) {
			near = append(near, n)
		}
	}
	if len(near) > 0 {
		return strings.Join(near, ", ") + " (and " + fmt.Sprint(len(names)-len(near)) + " more; see docs/providers.md#github-app)"
	}
	return strings.Join(names, ", ")
}

// scopeOf renders a permissions object as a sorted scope list.
func scopeOf(perms map[string]string) []string {
	out := make([]string, 0, len(perms))
	for name, lvl := range perms {
		out = append(out, name+":"+lvl)
	}
	sort.Strings(out)
	return out
}

// wider returns the granted permissions that the declared ones do not
// cover: an undeclared name, or a higher level.
func wider(declared, granted map[string]string) []string {
	rank := map[string]int{levelRead: 1, levelWrite: 2, levelAdmin: 3}
	var out []string
	for name, lvl := range granted {
		d, ok := declared[name]
		if !ok || rank[lvl] > rank[d] || rank[lvl] == 0 {
			out = append(out, name+":"+lvl)
		}
	}
	sort.Strings(out)
	return out
}
