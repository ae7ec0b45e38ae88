package secret

import (
	"encoding/base64"
	"encoding/json"
	"math"
	"regexp"
	"strings"
)

// DetectToken reports whether s contains, anywhere, a token of a known
// secret format (the token rules of rules.yaml: GitHub, Slack, AWS access key
// ids, OpenAI, Anthropic, Stripe, Google API keys, JWTs, PEM private keys,
// ...), and names its kind, such as "GitHub personal access token". The kind
// never includes the token. Documented example values count: configuration
// holds references, not examples.
func DetectToken(s string) (kind string, ok bool) {
	lower := strings.ToLower(s)
	for _, r := range Rules() {
		if r.Kind != RuleToken || !containsAny(lower, r.Keywords) {
			continue
		}
		if len(r.FindAll(s, false)) > 0 {
			return r.Description, true
		}
	}
	return "", false
}

func containsAny(s string, subs []string) bool {
	for _, k := range subs {
		if strings.Contains(s, k) {
			return true
		}
	}
	return false
}

func hasDigit(s string) bool { return strings.ContainsAny(s, "0123456789") }

func isLetter(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }

// jwtHeader reports whether the first segment of a candidate JWT is a
// base64url JSON object with an "alg" member.
func jwtHeader(s string) bool {
	seg, _, _ := strings.Cut(s, ".")
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(seg, "="))
	if err != nil {
		return false
	}
	var hdr map[string]json.RawMessage
	if json.Unmarshal(b, &hdr) != nil {
		return false
	}
	_, ok := hdr["alg"]
	return ok
}

// Thresholds of HighEntropy.
const (
	minEntropyLen = 16
	// minRandomLen is how many characters of a string must fall outside
	// identifier-like words ("mcp", "gateway", "us", "east", "1") for it to
	// look random.
	minRandomLen = 12
	// minEntropy is the Shannon entropy, in bits per character, above which
	// a string of mixed character classes looks random.
	minEntropy = 3.5
	// minHexEntropy applies to strings of hex digits only, whose alphabet
	// caps the entropy at 4 bits per character.
	minHexEntropy = 3.0
)

// identWord matches a word of an identifier: lower-case, Capitalised,
// UPPER-CASE or camelCase letters with optional leading or trailing digits
// ("mcp", "Gateway", "AWS", "clientId", "v2", "us", "1h", "30d"), or a number.
var identWord = regexp.MustCompile(`^(?:[0-9]+|[0-9]*(?:[a-z]+|[A-Z][a-z]+|[A-Z]+)(?:[A-Z][a-z]+)*[0-9]*)$`)

// refSpan matches one complete reference such as ${env:NAME}.
var refSpan = regexp.MustCompile(`\$\{[^{}]*\}`)

// uuidRE matches a canonical UUID, an identifier rather than a secret.
var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// HighEntropy reports whether s looks like a random secret: at least 16
// printable ASCII characters without spaces, mixed character classes (two of
// lower-case, upper-case and digits), at least 12 characters outside
// identifier-like words, and a Shannon entropy of at least 3.5 bits per
// character (3.0 for hex strings). URLs, paths, complete references
// (${...}), UUIDs, host names, identifiers such as mcp-gateway or us-east-1,
// and character sets ("abc...xyzABC...XYZ0123456789") do not match.
func HighEntropy(s string) bool {
	if rest := refSpan.ReplaceAllString(s, ""); rest != s {
		// Judge what surrounds the references; a reference names where a
		// secret lives, not the secret. An unterminated "${" is judged
		// like any other text.
		return HighEntropy(rest)
	}
	if len(s) < minEntropyLen || strings.Contains(s, "://") || uuidRE.MatchString(s) {
		return false
	}
	var lower, upper, digit, other bool
	hex := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c <= ' ' || c >= 0x7f:
			return false // whitespace, control characters, non-ASCII text
		case c >= 'a' && c <= 'z':
			lower = true
			hex = hex && c <= 'f'
		case c >= 'A' && c <= 'Z':
			upper = true
			hex = hex && c <= 'F'
		case c >= '0' && c <= '9':
			digit = true
		default:
			other = true
		}
	}
	if n := b2i(lower) + b2i(upper) + b2i(digit); n < 2 {
		return false
	}
	random := 0
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return !isLetter(r) && (r < '0' || r > '9') }) {
		if !identWord.MatchString(w) {
			random += len(w)
		}
	}
	if random < minRandomLen || sequential(s) {
		return false
	}
	threshold := minEntropy
	if hex && !other && !(lower && upper) {
		threshold = minHexEntropy
		if len(s) < 2*minEntropyLen {
			return false // short hex strings are ids and colours more often than keys
		}
	}
	return shannon(s) >= threshold
}

// sequential reports whether most neighbouring characters of s are
// consecutive ("abcdef...", "0123456789"): a character set such as the
// alphabet of a generator, not a draw from it.
func sequential(s string) bool {
	run := 0
	for i := 1; i < len(s); i++ {
		if s[i] == s[i-1]+1 {
			run++
		}
	}
	return 2*run >= len(s)-1
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// shannon returns the Shannon entropy of s in bits per byte.
func shannon(s string) float64 {
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	n := float64(len(s))
	h := 0.0
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}
