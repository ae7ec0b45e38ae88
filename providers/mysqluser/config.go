package mysqluser

import (
	"strings"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
)

// Strategies.
const (
	// StrategyAlternating keeps two accounts, <user>_a and <user>_b, each
	// granted the role <user> as its default role; each rotation sets a new
	// password on the account that is not in use, so the previous one keeps
	// working for the grace period (overlap).
	StrategyAlternating = "alternating"
	// StrategySingle changes the password of the account <user> itself: the
	// previous password stops working the moment the new one is set.
	StrategySingle = "single"
)

// Formats of the published value.
const (
	// FormatPassword publishes the password alone; the account is in the
	// version's metadata (login_user).
	FormatPassword = "password"
	// FormatURL publishes mysql://<user>:<password>@host:port/database,
	// with host and port of admin_dsn: what a consumer needs when the user
	// name changes at every rotation.
	FormatURL = "url"
)

// DefaultMaxAdminConnections is the default size of the admin connection
// pool of one provider.
const DefaultMaxAdminConnections = 4

// maxUserLen is the longest account name MySQL accepts (MariaDB takes 80;
// the smaller limit keeps a configuration portable).
const maxUserLen = 32

// badNameChars may not appear in account, host and database names:
// rotator writes them into statements as quoted literals, whose escaping
// depends on the server's sql_mode (NO_BACKSLASH_ESCAPES).
const badNameChars = "'\"`\\\x00"

// Metadata keys recorded with every version.
const (
	MetaLoginUser = "login_user"
	MetaHost      = "host"
	MetaStrategy  = "strategy"
	MetaFormat    = "format"
)

// Config is the configuration of a mysql-user provider.
type Config struct {
	// AdminDSN connects as an account that may ALTER USER the managed
	// accounts (and, for alternating, CREATE USER and grant the role): a
	// go-sql-driver DSN such as user:password@tcp(db:3306)/. A reference.
	AdminDSN secret.Value
	// Strategy is StrategyAlternating (default) or StrategySingle.
	Strategy string
	// PasswordLength is the number of random characters (16–128, default 32).
	PasswordLength int
	// CheckQuery is what Verify runs on a connection made with the new
	// credential (default SELECT 1).
	CheckQuery string
	// Format is FormatPassword or FormatURL; the default is FormatURL for
	// alternating (the user changes) and FormatPassword for single.
	Format string
	// MaxAdminConnections bounds the provider's pool of admin_dsn
	// connections (1–64, default DefaultMaxAdminConnections); as many login
	// verifications may be open at once besides.
	MaxAdminConnections int
}

// Cred is the per-credential configuration.
type Cred struct {
	// User is the account whose password rotates (single), or the role
	// holding the privileges and the base name of the accounts <user>_a and
	// <user>_b (alternating).
	User string
	// Host is the host part of the account ('user'@'host'); default %.
	Host string
	// Database is the database Verify connects to (and URLs name); empty
	// means the database of admin_dsn (which may be none).
	Database string
	// CheckQuery overrides the provider's.
	CheckQuery string
}

func parse(s settings.Map) (Config, settings.Errors) {
	r := settings.NewReader(s)
	c := Config{
		AdminDSN:            r.Secret("admin_dsn"),
		Strategy:            r.OneOf("strategy", StrategyAlternating, StrategyAlternating, StrategySingle),
		PasswordLength:      r.Int("password_length", 32, 16, 128),
		CheckQuery:          r.String("check_query", "SELECT 1"),
		MaxAdminConnections: r.Int("max_admin_connections", DefaultMaxAdminConnections, 1, 64),
	}
	if c.AdminDSN.IsZero() && !failed(r, "admin_dsn") {
		r.Fail("admin_dsn", "is required: a reference to a go-sql-driver DSN of an administrative account (user:password@tcp(db:3306)/), such as ${file:/run/secrets/mysql_admin_dsn}")
	}
	def := FormatPassword
	if c.Strategy == StrategyAlternating {
		def = FormatURL
	}
	c.Format = r.OneOf("format", def, FormatPassword, FormatURL)
	if strings.TrimSpace(c.CheckQuery) == "" {
		r.Fail("check_query", "must not be empty; the default is SELECT 1")
	}
	r.Unknown()
	return c, r.Errors()
}

func parseCred(s settings.Map, base Config) (Cred, settings.Errors) {
	r := settings.NewReader(s)
	c := Cred{
		User:       r.RequiredString("user"),
		Host:       r.String("host", "%"),
		Database:   r.String("database", ""),
		CheckQuery: r.String("check_query", base.CheckQuery),
	}
	max := maxUserLen
	if base.Strategy == StrategyAlternating {
		max -= 2
	}
	switch {
	case len(c.User) > max:
		r.Fail("user", "must be at most %d bytes (MySQL account names are at most 32, and alternating appends _a or _b)", max)
	case c.User == "":
	case strings.ContainsAny(c.User, badNameChars):
		r.Fail("user", "must not contain a quote, backtick, backslash or NUL byte")
	}
	switch {
	case c.Host == "":
		r.Fail("host", "must not be empty: the host part of the account, such as %% (any host), 10.0.%% or app.internal")
	case len(c.Host) > 255 || strings.ContainsAny(c.Host, badNameChars):
		r.Fail("host", "must be at most 255 bytes with no quote, backtick, backslash or NUL byte")
	}
	if len(c.Database) > 64 || strings.ContainsAny(c.Database, badNameChars+"/?") {
		r.Fail("database", "must be at most 64 bytes with no quote, backtick, backslash, slash, ? or NUL byte")
	}
	if strings.TrimSpace(c.CheckQuery) == "" {
		r.Fail("check_query", "must not be empty")
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
// known here, so the user's length is checked against the alternating
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
