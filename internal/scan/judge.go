package scan

import (
	"regexp"
	"strings"
	"unicode"

	"github.com/rotatorhq/rotator/internal/secret"
)

// Rules by kind, resolved once.
var (
	patternRules []*secret.Rule // token and url rules
	genericRule  = secret.RuleByID("generic-secret")
	toolRule     = secret.RuleByID("mcp-tool-credential-input")
)

func init() {
	for _, r := range secret.Rules() {
		if r.Kind == secret.RuleToken || r.Kind == secret.RuleURL {
			patternRules = append(patternRules, r)
		}
	}
	if genericRule == nil || toolRule == nil {
		panic("scan: rules.yaml lacks generic-secret or mcp-tool-credential-input")
	}
}

// verdict is the outcome of judging one value.
type verdict struct {
	rule       *secret.Rule
	start, end int // the secret within the value
}

// judge decides whether value, found under name (a variable, key, header
// or flag name; may be empty), is or holds a secret. A value of a known
// format is judged by its rule (a documented example is not a secret); any
// other value only under a sensitive name, by its entropy.
func judge(name, value string) (verdict, bool) {
	if len(value) < 8 {
		return verdict{}, false
	}
	lower := strings.ToLower(value)
	for _, r := range patternRules {
		if !containsAny(lower, r.Keywords) {
			continue
		}
		ms := r.FindAll(value, false)
		if len(ms) == 0 {
			continue
		}
		for _, m := range ms {
			if r.ID == "private-key" && !pemBody(value[m.End:]) {
				continue
			}
			if !r.Allowed(value[m.SecretStart:m.SecretEnd]) {
				return verdict{rule: r, start: m.SecretStart, end: m.SecretEnd}, true
			}
		}
		return verdict{}, false // a documented example or a placeholder
	}
	if name == "" || !sensitiveName(name) {
		return verdict{}, false
	}
	v, off := stripScheme(value)
	if !genericSecret(v, passwordName(name)) {
		return verdict{}, false
	}
	return verdict{rule: genericRule, start: off, end: off + len(v)}, true
}

// pemBody reports whether the text after a PEM header holds a key: at
// least 64 base64 characters before the END line (lines may be joined by
// "\n" escapes, or indented in a YAML block). A header with a stub body
// ("MIIEvQ...", "not the key") is documentation, not a key.
func pemBody(after string) bool {
	if len(after) > 8192 {
		after = after[:8192]
	}
	if i := strings.Index(after, "-----END"); i >= 0 {
		after = after[:i]
	}
	after = strings.ReplaceAll(after, `\n`, "\n")
	n := 0
	for i := 0; i < len(after); i++ {
		c := after[i]
		switch {
		case c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=':
			n++
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '"' || c == ',' || c == '|':
		case c == ':' || c == '-':
			// Encrypted PEM headers (Proc-Type: 4,ENCRYPTED).
		default:
			return n >= 64
		}
	}
	return n >= 64
}

func containsAny(s string, subs []string) bool {
	for _, k := range subs {
		if strings.Contains(s, k) {
			return true
		}
	}
	return false
}

// authSchemes are stripped from header values before judging them.
var authSchemes = []string{"bearer ", "basic ", "token ", "bot ", "apikey ", "key "}

func stripScheme(v string) (string, int) {
	l := strings.ToLower(v)
	for _, s := range authSchemes {
		if strings.HasPrefix(l, s) {
			rest := strings.TrimLeft(v[len(s):], " ")
			return rest, len(v) - len(rest)
		}
	}
	return v, 0
}

// snake turns apiKey, X-API-Key and API_KEY into api_key, x_api_key and
// api_key.
func snake(s string) string {
	b := make([]byte, 0, len(s)+4)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z':
			if i > 0 && (s[i-1] >= 'a' && s[i-1] <= 'z' || s[i-1] >= '0' && s[i-1] <= '9') {
				b = append(b, '_')
			}
			b = append(b, c+'a'-'A')
		case c == '-':
			b = append(b, '_')
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

// sensitiveName reports whether a variable, key, header or flag name says
// its value is a secret (client_secret, apiKey, X-API-Key, GITHUB_TOKEN,
// --password), but not one that names, counts or locates a secret
// (token_url, secret_name, api_key_env, max_tokens) or a public value
// (publishable_key, public_key).
func sensitiveName(name string) bool {
	n := strings.TrimLeft(name, "-$@")
	if i := strings.LastIndexAny(n, ".["); i >= 0 && i+1 < len(n) {
		n = n[i+1:]
	}
	n = strings.Trim(n, `"'[]`)
	n = snake(n)
	for _, p := range []string{"public", "publishable", "pubkey", "pub_key"} {
		if strings.Contains(n, p) {
			return false
		}
	}
	for _, s := range []string{"_env", "_var", "_file", "_path", "_ref", "_prefix", "_hint", "_format", "_expiry", "_expires", "_at", "_version", "_kind", "_label", "_location", "_helper", "_command", "_cmd", "_source", "_provider", "_mode", "_algorithm", "_field", "_host", "_hostname", "_port", "_user", "_username", "_timeout", "_dir", "_endpoint", "_region", "_email", "_encryption", "_hash", "_hashing", "_scheme", "_method"} {
		if strings.HasSuffix(n, s) {
			return false
		}
	}
	if strings.HasSuffix(n, "salt") || strings.HasPrefix(n, "salt_") {
		return true // hash_salt, AUTH_SALT: secrets of the application
	}
	switch n {
	case "auth", "pass", "pat", "apikey", "api_key", "authorization", "passphrase", "access_key", "secret_key":
		return true
	case "tokens", "token_count", "keys", "keyword", "keywords", "monkey", "hotkey", "keymap", "primary_key", "foreign_key", "sort_key", "cache_key", "partition_key", "idempotency_key", "dedupe_key", "key_name", "group_key", "grouping_key", "routing_key":
		return false
	}
	if strings.HasPrefix(n, "num_") || strings.Contains(n, "page_token") || strings.Contains(n, "next_token") || strings.HasSuffix(n, "_tokens") {
		return false
	}
	return secret.IsSensitiveKey(n)
}

// passwordName reports whether a sensitive name says password (password,
// passwd, pwd, passphrase, pass).
func passwordName(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "passw") || strings.Contains(n, "pwd") || strings.Contains(n, "passphrase") || n == "pass" || strings.HasSuffix(n, "_pass")
}

var (
	windowsPath = regexp.MustCompile(`^[A-Za-z]:[\\/]`)
	hostName    = regexp.MustCompile(`^[a-z0-9-]+(?:\.[a-z0-9-]+)+(?::\d+)?$`)
	semverLike  = regexp.MustCompile(`^v?\d+\.\d+(\.\d+)?([-+][0-9A-Za-z.-]+)?$`)
)

// genericSecret judges a value under a sensitive name: at least 8
// characters, no reference or placeholder, not a path, URL, identifier or
// version, two character classes and entropy above the rule's floor.
func genericSecret(v string, password bool) bool {
	if len(v) < 8 || len(v) > 4096 {
		return false
	}
	l := strings.ToLower(v)
	for _, ref := range []string{"${", "{{", "$(", "%(", "process.env", "os.environ", "getenv", "env[", "env.", "import.meta", "secrets.", "vars.", "<%", "#{"} {
		if strings.Contains(l, ref) {
			return false
		}
	}
	if strings.ContainsFunc(v, unicode.IsSpace) || strings.Contains(v, "://") {
		return false
	}
	// A path: rooted, with name-like parts (/run/secrets/db_password). A
	// base64 value may start with "/" too; its parts are not names.
	if (strings.HasPrefix(v, "/") || strings.HasPrefix(v, "./") || strings.HasPrefix(v, "../") || strings.HasPrefix(v, "~/") || strings.HasPrefix(v, `\`) || windowsPath.MatchString(v)) &&
		secret.LooksLikeIdentifier(v) {
		return false
	}
	if semverLike.MatchString(v) {
		return false
	}
	var lower, upper, digit, other, symbol bool
	for _, c := range v {
		switch {
		case c >= 'a' && c <= 'z':
			lower = true
		case c >= 'A' && c <= 'Z':
			upper = true
		case c >= '0' && c <= '9':
			digit = true
		default:
			other = true
			symbol = symbol || !strings.ContainsRune("-_.:/@+=", c)
		}
	}
	// A password is what its name says once it mixes letters with digits
	// or symbols, unless it reads as a name (unregistered-4, scram-sha-256):
	// a name has no symbols and not all of lower case, upper case and digits.
	if password && (lower || upper) && (digit || symbol) && !envName(v) && !hostName.MatchString(v) &&
		(symbol || (lower && upper && digit) || !secret.LooksLikeIdentifier(v)) {
		return !genericRule.Allowed(v)
	}
	// Identifiers (mcp-gateway, orders_service_v2) are names, not draws
	// from a generator; symbols other than separators are not in names.
	if !symbol && secret.LooksLikeIdentifier(v) {
		return false
	}
	classes := 0
	for _, b := range []bool{lower, upper, digit, other} {
		if b {
			classes++
		}
	}
	if classes < 2 {
		return false
	}
	return secret.Entropy(v) >= genericRule.MinEntropy && !genericRule.Allowed(v)
}
