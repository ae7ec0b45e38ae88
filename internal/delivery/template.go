package delivery

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/rotatorhq/rotator/internal/secret"
)

// A header template is a header value with placeholders naming credentials:
// "Bearer {github-mcp}" is "Bearer " followed by the current value of the
// credential github-mcp. A placeholder is a credential id between braces;
// "{{" and "}}" stand for literal braces. Any other brace is an error, so a
// typo never sends a half-expanded header.

// credentialIDRE is the form of a credential id (internal/config's slugs).
var credentialIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)

// IsCredentialID reports whether s has the form of a credential id:
// lower-case letters, digits, '.', '_' and '-', starting with a letter or
// digit, at most 128 bytes.
func IsCredentialID(s string) bool { return credentialIDRE.MatchString(s) }

// Template is a parsed header value template, for a caller that renders it
// many times (`rotator proxy` renders it again at each cutover).
type Template struct {
	// parts alternate literal text and credential ids: parts[i] is an id
	// when isID[i].
	parts []string
	isID  []bool
}

// ParseTemplate parses a header value template such as "Bearer {github}".
// It refuses, besides a malformed placeholder, a template that names no
// credential (its value would be a literal, which belongs in no flag or
// file), literal text that looks like a token, and literal text that may
// not go into a header. Its errors start with "template" and never repeat
// the template's text (it may hold a secret pasted in the wrong place).
func ParseTemplate(s string) (Template, error) {
	var t Template
	var lit strings.Builder
	flush := func() {
		if lit.Len() > 0 {
			t.parts, t.isID = append(t.parts, lit.String()), append(t.isID, false)
			lit.Reset()
		}
	}
	err := walk(s, func(l string) { lit.WriteString(l) }, func(id string) {
		flush()
		t.parts, t.isID = append(t.parts, id), append(t.isID, true)
	})
	if err != nil {
		return Template{}, err
	}
	flush()
	if len(t.Credentials()) == 0 {
		return Template{}, errors.New("template names no credential: a header takes its value from one, as in 'Bearer {credential-id}' (a literal value belongs in no flag or file)")
	}
	for i, p := range t.parts {
		if t.isID[i] {
			continue
		}
		if kind, ok := secret.DetectToken(p); ok {
			return Template{}, fmt.Errorf("template holds what looks like a %s in its literal text; a header takes secrets only from {credential-id} placeholders", kind)
		}
		if !validHeaderValue(p) {
			return Template{}, errors.New("template holds a character not allowed in an HTTP header value (a control character or line break)")
		}
	}
	return t, nil
}

// Credentials returns the credential ids the template names, in order of
// first appearance.
func (t Template) Credentials() []string {
	var out []string
	for i, p := range t.parts {
		if t.isID[i] && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out
}

// Render fills the placeholders with the values value returns. It returns
// an error (naming the credential, never the value) when a value cannot go
// into a header.
func (t Template) Render(value func(credentialID string) string) (string, error) {
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

// Header is one header to deliver: its name and its value template.
type Header struct {
	Name     string
	Template string
}

// ParseHeader parses "Name=Template", as given to --header: the name is an
// HTTP header name, the template holds at least one {credential}
// placeholder.
func ParseHeader(s string) (Header, error) {
	name, tmpl, ok := strings.Cut(s, "=")
	name = strings.TrimSpace(name)
	if !ok || name == "" {
		return Header{}, fmt.Errorf("header argument of %d bytes: want Name=Template, for example 'Authorization=Bearer {github-mcp}' (the argument is not repeated: it may hold a secret)", len(s))
	}
	if !ValidHeaderName(name) {
		return Header{}, fmt.Errorf("header %q is not a valid HTTP header name (letters, digits and !#$%%&'*+-.^_`|~)", clip(name))
	}
	creds, err := Credentials(tmpl)
	if err != nil {
		return Header{}, fmt.Errorf("header %s: %w", name, err)
	}
	if len(creds) == 0 {
		return Header{}, fmt.Errorf("header %s: the template names no credential; put its id in braces, for example 'Bearer {github-mcp}'", name)
	}
	if _, err := ParseTemplate(tmpl); err != nil {
		return Header{}, fmt.Errorf("header %s: %w", name, err)
	}
	return Header{Name: http.CanonicalHeaderKey(name), Template: tmpl}, nil
}

// Credentials returns the credential ids a template names, in order of
// first appearance, or an error naming the first malformed placeholder.
func Credentials(template string) ([]string, error) {
	var ids []string
	seen := map[string]bool{}
	err := walk(template, func(lit string) {}, func(id string) {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	})
	return ids, err
}

// Expand replaces each {credential} placeholder of template with the value
// read returns for it (read is called once per distinct credential). On any
// error it returns "" and the error: never a partial expansion. The error
// names the credential, never a value.
func Expand(template string, read func(credentialID string) (string, error)) (string, error) {
	ids, err := Credentials(template)
	if err != nil {
		return "", err
	}
	vals := make(map[string]string, len(ids))
	for _, id := range ids {
		v, err := read(id)
		if err != nil {
			// Sources name the credential in their errors; say it once.
			if strings.Contains(err.Error(), strconv.Quote(id)) {
				return "", err
			}
			return "", fmt.Errorf("reading credential %q: %w", id, err)
		}
		vals[id] = v
	}
	var b strings.Builder
	_ = walk(template, func(lit string) { b.WriteString(lit) }, func(id string) { b.WriteString(vals[id]) })
	return b.String(), nil
}

// ExpandHeaders expands every header's template, reading each credential
// once, and returns the headers by name; on any error it returns nil and
// the error.
func ExpandHeaders(headers []Header, read func(credentialID string) (string, error)) (map[string]string, error) {
	cache := map[string]string{}
	cached := func(id string) (string, error) {
		if v, ok := cache[id]; ok {
			return v, nil
		}
		v, err := read(id)
		if err != nil {
			return "", err
		}
		cache[id] = v
		return v, nil
	}
	out := make(map[string]string, len(headers))
	for _, h := range headers {
		v, err := Expand(h.Template, cached)
		if err != nil {
			return nil, fmt.Errorf("header %s: %w", h.Name, err)
		}
		if !validHeaderValue(v) {
			return nil, fmt.Errorf("header %s: the expanded value is not a valid HTTP header value (a credential's value holds a control character such as a newline)", h.Name)
		}
		out[h.Name] = v
	}
	return out, nil
}

// walk splits template into literal text and placeholders.
func walk(template string, lit func(string), placeholder func(id string)) error {
	rest := template
	for rest != "" {
		i := strings.IndexAny(rest, "{}")
		if i < 0 {
			lit(rest)
			return nil
		}
		lit(rest[:i])
		switch {
		case strings.HasPrefix(rest[i:], "{{"):
			lit("{")
			rest = rest[i+2:]
		case strings.HasPrefix(rest[i:], "}}"):
			lit("}")
			rest = rest[i+2:]
		case rest[i] == '}':
			return fmt.Errorf("template: unmatched '}' at byte %d (write '}}' for a literal brace)", len(template)-len(rest)+i)
		default:
			end := strings.IndexByte(rest[i:], '}')
			if end < 0 {
				return fmt.Errorf("template: '{' at byte %d is not closed (write '{{' for a literal brace)", len(template)-len(rest)+i)
			}
			id := rest[i+1 : i+end]
			if !credentialIDRE.MatchString(id) {
				return fmt.Errorf("template: the braces at byte %d hold no credential id (lower-case letters, digits, '.', '_' and '-'; the text is not repeated: it may be a secret)", len(template)-len(rest)+i)
			}
			placeholder(id)
			rest = rest[i+end+1:]
		}
	}
	return nil
}

// clip shortens what is quoted back in an error.
func clip(s string) string {
	if len(s) > 80 {
		return s[:77] + "..."
	}
	return s
}

// ValidHeaderName reports whether s may be an HTTP header name (an RFC
// 9110 token).
func ValidHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// validHeaderValue reports whether s may be sent as a header value: no
// control character but horizontal tab, no DEL.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// ReadHeaders reads the credentials the headers name through src, each
// once (every read is audited by the source), and returns the expanded
// headers by name; on any error it returns nil and the error (never a
// partial set).
func ReadHeaders(ctx context.Context, src Source, headers []Header, purpose string) (map[string]string, error) {
	return ExpandHeaders(headers, func(id string) (string, error) {
		cur, err := src.Read(ctx, ReadRequest{CredentialID: id, Purpose: purpose})
		if err != nil {
			return "", err
		}
		return cur.Value.RevealString(), nil
	})
}
