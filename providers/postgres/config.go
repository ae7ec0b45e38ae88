package postgres

import (
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
)

// Strategies.
const (
	// StrategyAlternating keeps two login roles, <role>_a and <role>_b,
	// members of the group role <role>; each rotation sets a new password
	// on the login role that is not in use, so the previous one keeps
	// working for the grace period (overlap).
	StrategyAlternating = "alternating"
	// StrategySingle changes the password of <role> itself: the previous
	// password stops working the moment the new one is set (no overlap).
	StrategySingle = "single"
)

// Formats of the published value.
const (
	// FormatPassword publishes the password alone; the login role is in the
	// version's metadata (login_role).
	FormatPassword = "password"
	// FormatURL publishes a postgres:// URL with the login role, the
	// password, and the host, port, database and sslmode of admin_dsn:
	// what a consumer needs when the user name changes at every rotation.
	FormatURL = "url"
)

// Verification modes (verify).
const (
	// VerifyLogin logs in as the login role with the new password, on a
	// fresh connection, and runs check_query: it proves everything a
	// consumer needs (pg_hba.conf, LOGIN, VALID UNTIL, CONNECT, the
	// password, the query's privileges), at the cost of one new backend
	// per verification.
	VerifyLogin = "login"
	// VerifyVerifier reads the role's stored SCRAM-SHA-256 verifier
	// (pg_authid.rolpassword) over a pooled admin connection and checks it
	// against the new password, with the role's LOGIN, VALID UNTIL,
	// connection limit, CONNECT privilege and (alternating) group
	// membership. It does not log in: pg_hba.conf and check_query are not
	// tested. The admin role must be able to read pg_authid.
	VerifyVerifier = "verifier"
)

// DefaultMaxAdminConnections is the default size of the admin connection
// pool of one provider.
const DefaultMaxAdminConnections = 4

// Metadata keys recorded with every version.
const (
	MetaLoginRole = "login_role"
	MetaStrategy  = "strategy"
	MetaFormat    = "format"
)

// Config is the configuration of a postgres-role provider.
type Config struct {
	// AdminDSN connects as a role that may ALTER (and, for alternating,
	// CREATE and GRANT) the managed roles: a superuser, or a role with
	// CREATEROLE and ADMIN OPTION on the group roles. A reference.
	AdminDSN secret.Value
	// Strategy is StrategyAlternating (default) or StrategySingle.
	Strategy string
	// PasswordLength is the number of random characters (16–128, default 32).
	PasswordLength int
	// CheckQuery is what Verify runs on a connection made with the new
	// credential (default SELECT 1).
	CheckQuery string
	// ValidFor, when set, is the password's lifetime at the server (VALID
	// UNTIL) and the version's expiry.
	ValidFor time.Duration
	// Format is FormatPassword or FormatURL; the default is FormatURL for
	// alternating (the user changes) and FormatPassword for single.
	Format string
	// URLSSLMode is the sslmode of published URLs; empty means the mode of
	// admin_dsn.
	URLSSLMode string
	// Verify is VerifyLogin (default) or VerifyVerifier.
	Verify string
	// MaxAdminConnections bounds the provider's pool of admin_dsn
	// connections (1–64, default DefaultMaxAdminConnections).
	MaxAdminConnections int
	// SCRAMIterations is the iteration count of the verifiers rotator
	// computes (1–1048576, default 4096, PostgreSQL's default). It is what
	// a guess at the password costs an attacker holding the verifier, and
	// what every derivation of the keys costs: the server's check of each
	// new verifier against the empty password at ALTER ROLE, rotator's
	// verify: verifier and Revoke, and each client's login.
	SCRAMIterations int
}

// Cred is the per-credential configuration.
type Cred struct {
	// Role is the role whose password rotates (single) or the group role
	// whose login roles rotate (alternating).
	Role string
	// Database is the database Verify connects to (and URLs name); empty
	// means the database of admin_dsn.
	Database string
	// CheckQuery and ValidFor override the provider's.
	CheckQuery string
	ValidFor   time.Duration
}

var sslModes = []string{"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}

func parse(s settings.Map) (Config, settings.Errors) {
	r := settings.NewReader(s)
	c := Config{
		AdminDSN:       r.Secret("admin_dsn"),
		Strategy:       r.OneOf("strategy", StrategyAlternating, StrategyAlternating, StrategySingle),
		PasswordLength: r.Int("password_length", 32, 16, 128),
		CheckQuery:     r.String("check_query", "SELECT 1"),
		ValidFor:       r.Duration("valid_for", 0),
		Verify:         r.OneOf("verify", VerifyLogin, VerifyLogin, VerifyVerifier),

		MaxAdminConnections: r.Int("max_admin_connections", DefaultMaxAdminConnections, 1, 64),
		SCRAMIterations:     r.Int("scram_iterations", scramIterations, 1, maxSCRAMIterations),
	}
	if c.Verify == VerifyVerifier && r.Has("check_query") {
		r.Fail("check_query", "is run only by verify: login (it needs a session of the login role); with verify: verifier nothing logs in, so remove check_query or use verify: login")
	}
	if c.AdminDSN.IsZero() && !failed(r, "admin_dsn") {
		r.Fail("admin_dsn", "is required: a reference to the connection string of an administrative role, such as ${file:/run/secrets/pg_admin_dsn}")
	}
	def := FormatPassword
	if c.Strategy == StrategyAlternating {
		def = FormatURL
	}
	c.Format = r.OneOf("format", def, FormatPassword, FormatURL)
	if r.Has("url_sslmode") {
		c.URLSSLMode = r.OneOf("url_sslmode", "", sslModes...)
	}
	if strings.TrimSpace(c.CheckQuery) == "" {
		r.Fail("check_query", "must not be empty; the default is SELECT 1")
	}
	if c.ValidFor < 0 {
		r.Fail("valid_for", "must not be negative")
	}
	r.Unknown()
	return c, r.Errors()
}

func parseCred(s settings.Map, base Config) (Cred, settings.Errors) {
	r := settings.NewReader(s)
	c := Cred{
		Role:       r.RequiredString("role"),
		Database:   r.String("database", ""),
		CheckQuery: r.String("check_query", base.CheckQuery),
		ValidFor:   r.Duration("valid_for", base.ValidFor),
	}
	// Identifiers are at most 63 bytes; alternating appends _a/_b.
	max := 63
	if base.Strategy == StrategyAlternating {
		max = 61
	}
	switch {
	case len(c.Role) > max:
		r.Fail("role", "must be at most %d bytes (PostgreSQL identifiers are at most 63, and alternating appends _a or _b)", max)
	case strings.ContainsRune(c.Role, 0):
		r.Fail("role", "must not contain a NUL byte")
	}
	if strings.TrimSpace(c.CheckQuery) == "" {
		r.Fail("check_query", "must not be empty")
	}
	if base.Verify == VerifyVerifier && r.Has("check_query") {
		r.Fail("check_query", "is run only when the provider verifies by logging in (verify: login); this provider has verify: verifier, which does not log in")
	}
	if c.ValidFor < 0 {
		r.Fail("valid_for", "must not be negative")
	}
	r.Unknown()
	return c, r.Errors()
}

// ValidateProvider checks provider-level settings.
func ValidateProvider(s settings.Map) settings.Errors {
	_, errs := parse(s)
	return errs
}

// ValidateCredential checks per-credential settings. The strategy is not
// known here, so the role's length is checked against the alternating
// limit, the stricter one.
func ValidateCredential(s settings.Map) settings.Errors {
	_, errs := parseCred(s, Config{Strategy: StrategyAlternating, CheckQuery: "SELECT 1"})
	return errs
}

func failed(r *settings.Reader, field string) bool {
	for _, e := range r.Errors() {
		if e.Field == field {
			return true
		}
	}
	return false
}
