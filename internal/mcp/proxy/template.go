package proxy

import (
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"

	"github.com/rotatorhq/rotator/internal/secret"
)

// This file holds a minimal header-template parser. The delivery package
// is to get a shared one (internal/delivery/template.go, for `rotator
// headers`); when it lands, this one folds into it.

// credentialID is what a {placeholder} may name: a credential id
// (internal/config's slug).
var credentialID = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)

// template is a parsed header value template: literal text and
// {credential-id} placeholders, in order.
type template struct {
	// parts alternate literal text and credential ids: parts[i] is an id
	// when isID[i].
	parts []string
	isID  []bool
}

// parseTemplate parses a header value template such as "Bearer {github}".
// "{{" and "}}" stand for literal braces. It refuses a template that names
// no credential (its value would be a literal, which belongs in no flag or
// config file) and literal text that looks like a token.
func parseTemplate(s string) (template, error) {
	var t template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts, t.isID = append(t.parts, lit.String()), append(t.isID, false)
			lit.Reset()
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '{' && i+1 < len(s) && s[i+1] == '{', c == '}' && i+1 < len(s) && s[i+1] == '}':
			lit.WriteByte(c)
			i++
		case c == '{':
			end := strings.IndexByte(s[i+1:], '}')
			if end < 0 {
				return template{}, fmt.Errorf("has an unclosed '{' at byte %d: write {credential-id}, or {{ for a literal brace", i+1)
			}
			id := s[i+1 : i+1+end]
			if !credentialID.MatchString(id) {
				return template{}, fmt.Errorf("has {%s}, which is not a credential id (lower-case letters, digits, '.', '_' and '-', starting with a letter or digit)", show(id))
			}
			flush()
			t.parts, t.isID = append(t.parts, id), append(t.isID, true)
			i += end + 1
		case c == '}':
			return template{}, fmt.Errorf("has an unmatched '}' at byte %d: write }} for a literal brace", i+1)
		default:
			lit.WriteByte(c)
		}
	}
	flush()
	if len(t.ids()) == 0 {
		return template{}, errors.New("names no credential: a header takes its value from one, as in 'Bearer {credential-id}' (a literal value belongs in no flag or file)")
	}
	for i, p := range t.parts {
		if t.isID[i] {
			continue
		}
		if kind, ok := secret.DetectToken(p); ok {
			return template{}, fmt.Errorf("holds what looks like a %s in its literal text; a header takes secrets only from {credential-id} placeholders", kind)
		}
		if !validHeaderValue(p) {
			return template{}, errors.New("holds a character not allowed in an HTTP header value (a control character or line break)")
		}
	}
	return t, nil
}

// ids returns the credential ids the template names, in order, without
// repeats.
func (t template) ids() []string {
	var out []string
	for i, p := range t.parts {
		if t.isID[i] && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// render fills the placeholders with values. It returns an error (naming
// the credential, never the value) when a value cannot go into a header.
func (t template) render(value func(id string) string) (string, error) {
	var b strings.Builder
	for i, p := range t.parts {
		if !t.isID[i] {
			b.WriteString(p)
			continue
		}
		v := value(p)
		if !validHeaderValue(v) {
			return "", fmt.Errorf("the current value of credential %q holds a character not allowed in an HTTP header (a control character or line break)", p)
		}
		b.WriteString(v)
	}
	return b.String(), nil
}

// parseHeaderName checks an injected header's name.
func parseHeaderName(name string) (string, error) {
	if !validHeaderName(name) {
		return "", fmt.Errorf("%s is not a valid HTTP header name (letters, digits and !#$%%&'*+-.^_`|~)", show(name))
	}
	canon := http.CanonicalHeaderKey(name)
	for _, hop := range hopByHop {
		if strings.EqualFold(canon, hop) {
			return "", fmt.Errorf("%s is a hop-by-hop header, which never reaches the upstream; use Authorization or the header the upstream reads", canon)
		}
	}
	if strings.EqualFold(canon, "Host") || strings.EqualFold(canon, "Content-Length") || strings.HasPrefix(strings.ToLower(canon), "mcp-") {
		return "", fmt.Errorf("%s belongs to HTTP or to the MCP transport and cannot carry a credential", canon)
	}
	return canon, nil
}

// hopByHop are the headers a proxy removes (RFC 9110 §7.6.1).
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// validHeaderValue reports whether v may be sent as a header value: no
// control character but horizontal tab (RFC 9110 §5.5).
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// validHeaderName reports whether n is an HTTP token (RFC 9110 §5.6.2).
func validHeaderName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// show quotes a string from a flag or file for a message, unless it looks
// like a secret pasted in the wrong place.
func show(s string) string {
	if _, tok := secret.DetectToken(s); tok || secret.HighEntropy(s) || len(s) > 128 {
		return "(a value that looks like a secret, not repeated)"
	}
	return fmt.Sprintf("%q", s)
}
