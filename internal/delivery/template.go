package delivery

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
)

// A header template is a header value with placeholders naming credentials:
// "Bearer {github-mcp}" is "Bearer " followed by the current value of the
// credential github-mcp. A placeholder is a credential id between braces;
// "{{" and "}}" stand for literal braces. Any other brace is an error, so a
// typo never sends a half-expanded header.

// credentialIDRE is the form of a credential id (internal/config's slugs).
var credentialIDRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)

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
	if !validHeaderName(name) {
		return Header{}, fmt.Errorf("header %q is not a valid HTTP header name (letters, digits and !#$%%&'*+-.^_`|~)", clip(name))
	}
	creds, err := Credentials(tmpl)
	if err != nil {
		return Header{}, fmt.Errorf("header %s: %w", name, err)
	}
	if len(creds) == 0 {
		return Header{}, fmt.Errorf("header %s: the template names no credential; put its id in braces, for example 'Bearer {github-mcp}'", name)
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

// validHeaderName reports whether s is an RFC 9110 token.
func validHeaderName(s string) bool {
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
