// Package settings reads the free-form settings maps of plugins (providers,
// targets, notifiers) with typed accessors that collect errors naming the
// field, so that a configuration error can point at file, line and key.
package settings

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/duration"
	"github.com/rotatorhq/rotator/internal/netx"
	"github.com/rotatorhq/rotator/internal/secret"
)

// Map is a plugin's settings as decoded from YAML: string keys; values are
// strings, bools, ints, floats, lists and maps.
type Map map[string]any

// Error is a problem with one settings field.
type Error struct {
	// Field is the dotted path of the field inside the settings map.
	Field string
	// Msg says what is wrong and what would be valid.
	Msg string
}

func (e Error) Error() string { return e.Field + ": " + e.Msg }

// Errors is a list of field errors.
type Errors []Error

// Reader reads typed fields from a Map and records every problem.
type Reader struct {
	m    Map
	seen map[string]bool
	errs Errors
}

// NewReader returns a Reader over m.
func NewReader(m Map) *Reader { return &Reader{m: m, seen: map[string]bool{}} }

// Errors returns the problems found so far.
func (r *Reader) Errors() Errors { return r.errs }

// Fail records a problem with a field.
func (r *Reader) Fail(field, format string, args ...any) {
	r.errs = append(r.errs, Error{Field: field, Msg: fmt.Sprintf(format, args...)})
}

// Has reports whether the field is present.
func (r *Reader) Has(field string) bool {
	_, ok := r.m[field]
	return ok
}

func (r *Reader) get(field string) (any, bool) {
	r.seen[field] = true
	v, ok := r.m[field]
	return v, ok && v != nil
}

// String returns a string field, or def when absent.
func (r *Reader) String(field, def string) string {
	v, ok := r.get(field)
	if !ok {
		return def
	}
	switch s := v.(type) {
	case string:
		return s
	case int, int64, float64, bool:
		return fmt.Sprint(s)
	}
	r.Fail(field, "must be a string, got %s", kind(v))
	return def
}

// RequiredString returns a string field that must be present and non-empty.
func (r *Reader) RequiredString(field string) string {
	s := r.String(field, "")
	if s == "" && !r.failed(field) {
		r.Fail(field, "is required")
	}
	return s
}

// OneOf returns a string field that must be one of the allowed values.
func (r *Reader) OneOf(field, def string, allowed ...string) string {
	s := r.String(field, def)
	if !slices.Contains(allowed, s) && !r.failed(field) {
		r.Fail(field, "must be one of %s, got %q", strings.Join(allowed, ", "), s)
		return def
	}
	return s
}

// Int returns an integer field within [lo, hi], or def when absent.
func (r *Reader) Int(field string, def, lo, hi int) int {
	v, ok := r.get(field)
	if !ok {
		return def
	}
	var n int
	switch x := v.(type) {
	case int:
		n = x
	case int64:
		n = int(x)
	case float64:
		if x != math.Trunc(x) {
			r.Fail(field, "must be a whole number, got %v", x)
			return def
		}
		n = int(x)
	default:
		r.Fail(field, "must be a number, got %s", kind(v))
		return def
	}
	if n < lo || n > hi {
		r.Fail(field, "must be between %d and %d, got %d", lo, hi, n)
		return def
	}
	return n
}

// Bool returns a boolean field, or def when absent.
func (r *Reader) Bool(field string, def bool) bool {
	v, ok := r.get(field)
	if !ok {
		return def
	}
	b, isBool := v.(bool)
	if !isBool {
		r.Fail(field, "must be true or false, got %s", kind(v))
		return def
	}
	return b
}

// Duration returns a duration field (Go syntax plus d for days), or def.
func (r *Reader) Duration(field string, def time.Duration) time.Duration {
	v, ok := r.get(field)
	if !ok {
		return def
	}
	s, isString := v.(string)
	if !isString {
		r.Fail(field, "must be a duration such as 30s, 15m, 1h or 30d, got %s", kind(v))
		return def
	}
	d, err := duration.Parse(s)
	if err != nil {
		r.Fail(field, "%v", err)
		return def
	}
	return d
}

// Strings returns a list of strings, or def when absent.
func (r *Reader) Strings(field string, def []string) []string {
	v, ok := r.get(field)
	if !ok {
		return def
	}
	list, isList := v.([]any)
	if !isList {
		r.Fail(field, "must be a list of strings, got %s", kind(v))
		return def
	}
	out := make([]string, 0, len(list))
	for i, e := range list {
		s, isString := e.(string)
		if !isString {
			r.Fail(fmt.Sprintf("%s[%d]", field, i), "must be a string, got %s", kind(e))
			continue
		}
		out = append(out, s)
	}
	return out
}

// Map returns a nested map, or nil when absent.
func (r *Reader) Map(field string) Map {
	v, ok := r.get(field)
	if !ok {
		return nil
	}
	switch m := v.(type) {
	case map[string]any:
		return Map(m)
	case Map:
		return m
	}
	r.Fail(field, "must be a mapping, got %s", kind(v))
	return nil
}

// Unknown records an error for every field that no accessor read. Call it
// last; allowedExtra names fields that are read elsewhere.
func (r *Reader) Unknown(allowedExtra ...string) {
	known := make([]string, 0, len(r.seen))
	for k := range r.seen {
		known = append(known, k)
	}
	known = append(known, allowedExtra...)
	slices.Sort(known)
	keys := make([]string, 0, len(r.m))
	for k := range r.m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !slices.Contains(known, k) {
			r.Fail(k, "unknown field; valid fields are %s", strings.Join(known, ", "))
		}
	}
}

func (r *Reader) failed(field string) bool {
	for _, e := range r.errs {
		if e.Field == field {
			return true
		}
	}
	return false
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "nothing"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	case int, int64, float64:
		return "a number"
	case []any:
		return "a list"
	case map[string]any, Map:
		return "a mapping"
	}
	return fmt.Sprintf("%T", v)
}

// Secret returns a field holding a secret. After reference resolution such
// fields hold a secret.Value; before it (validation) they hold the reference
// string, which Secret accepts and wraps so that validation code and runtime
// code read the field the same way.
func (r *Reader) Secret(field string) secret.Value {
	v, ok := r.get(field)
	if !ok {
		return secret.Value{}
	}
	switch s := v.(type) {
	case secret.Value:
		return s
	case string:
		return secret.NewString(s)
	}
	if id, ok := CredentialRef(v); ok {
		// Unresolved (validation): a placeholder that is never a value.
		return secret.NewString("{credential: " + id + "}")
	}
	r.Fail(field, "must be a reference such as ${env:NAME} or {credential: ID}, got %s", kind(v))
	return secret.Value{}
}

// CredentialRef reports whether v is a reference to the current value of
// another credential, the mapping {credential: ID}, and returns the id.
func CredentialRef(v any) (string, bool) {
	var m map[string]any
	switch x := v.(type) {
	case map[string]any:
		m = x
	case Map:
		m = x
	default:
		return "", false
	}
	if len(m) != 1 {
		return "", false
	}
	id, ok := m["credential"].(string)
	return id, ok && id != ""
}

// CredentialRefs returns the dotted paths and ids of every {credential: ID}
// reference in m, at any depth.
func CredentialRefs(m Map) map[string]string {
	out := map[string]string{}
	var walk func(v any, path string)
	walk = func(v any, path string) {
		if id, ok := CredentialRef(v); ok {
			out[path] = id
			return
		}
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				p := k
				if path != "" {
					p = path + "." + k
				}
				walk(e, p)
			}
		case Map:
			walk(map[string]any(x), path)
		case []any:
			for i, e := range x {
				walk(e, fmt.Sprintf("%s[%d]", path, i))
			}
		}
	}
	walk(map[string]any(m), "")
	return out
}

// ErrCredentialRef is returned (wrapped) when settings that cannot refer to
// credentials hold a {credential: ID} reference.
var ErrCredentialRef = errors.New("a {credential: ID} reference is allowed only in provider settings")

// Resolve returns a copy of m in which every string that is a reference
// (${env:...}, ${file:...}, ${aws-sm:...}), at any depth, is replaced by
// the secret.Value it resolves to.
func Resolve(ctx context.Context, m Map, resolve func(context.Context, string) (secret.Value, error)) (Map, error) {
	return ResolveWithCredentials(ctx, m, resolve, nil)
}

// ResolveWithCredentials is Resolve that also replaces every {credential:
// ID} mapping by the value credential returns for ID (the credential's
// current value). With credential nil such a mapping is an error wrapping
// ErrCredentialRef.
func ResolveWithCredentials(ctx context.Context, m Map, resolve, credential func(context.Context, string) (secret.Value, error)) (Map, error) {
	out, err := resolveAny(ctx, map[string]any(m), "", resolver{resolve, credential})
	if err != nil {
		return nil, err
	}
	if out == nil {
		return nil, nil
	}
	resolved, ok := out.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("settings resolved to %T, want a map", out)
	}
	return Map(resolved), nil
}

type resolver struct {
	ref, credential func(context.Context, string) (secret.Value, error)
}

func resolveAny(ctx context.Context, v any, path string, resolve resolver) (any, error) {
	if id, ok := CredentialRef(v); ok {
		if resolve.credential == nil {
			return nil, fmt.Errorf("%s: %w", path, ErrCredentialRef)
		}
		val, err := resolve.credential(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("%s: credential %s: %w", path, id, err)
		}
		return val, nil
	}
	switch x := v.(type) {
	case string:
		if !secret.IsRef(x) {
			return x, nil
		}
		val, err := resolve.ref(ctx, x)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return val, nil
	case map[string]any:
		if x == nil {
			return nil, nil
		}
		out := make(map[string]any, len(x))
		for k, e := range x {
			p := k
			if path != "" {
				p = path + "." + k
			}
			r, err := resolveAny(ctx, e, p, resolve)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case Map:
		return resolveAny(ctx, map[string]any(x), path, resolve)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			r, err := resolveAny(ctx, e, fmt.Sprintf("%s[%d]", path, i), resolve)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	}
	return v, nil
}

// Nest records the errors of a nested Reader (a sub-map's) on r, each
// field prefixed with prefix and a dot.
func (r *Reader) Nest(prefix string, errs Errors) {
	for _, e := range errs {
		field := prefix
		if e.Field != "" {
			field += "." + e.Field
		}
		r.Fail(field, "%s", e.Msg)
	}
}

// URLRule says what HTTPURL accepts besides an absolute http(s) URL
// without user information.
type URLRule struct {
	// Example is shown in the error for a URL that does not parse, as
	// "such as <Example>".
	Example string
	// InsecureHTTP lets plain http go to a host other than the loopback
	// interface (the plugin's insecure_http: true).
	InsecureHTTP bool
	// Bare refuses a query and a fragment too (a base URL that paths are
	// joined to).
	Bare bool
	// Required fails an empty value; otherwise an empty value is left to
	// the caller (an optional field).
	Required bool
}

// shownURL is raw as an error may show it: without the password of its
// user information (url.URL.Redacted), or, when it does not parse,
// without anything before an "@".
func shownURL(raw string, u *url.URL, err error) string {
	if err == nil {
		return u.Redacted()
	}
	if i := strings.LastIndexByte(raw, '@'); i >= 0 {
		return "xxxxx@" + raw[i+1:]
	}
	return raw
}

// HTTPURL checks that raw is an absolute http or https URL holding no
// credentials, and that plain http goes only to the loopback interface
// unless rule.InsecureHTTP is set; each problem is recorded on field.
func (r *Reader) HTTPURL(field, raw string, rule URLRule) {
	if raw == "" && !rule.Required {
		return
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		example := ""
		if rule.Example != "" {
			example = " such as " + rule.Example
		}
		r.Fail(field, "must be an absolute http or https URL%s, got %q", example, shownURL(raw, u, err))
		return
	}
	switch {
	case rule.Bare && (u.User != nil || u.RawQuery != "" || u.Fragment != ""):
		r.Fail(field, "must not hold credentials, a query or a fragment")
		return
	case u.User != nil:
		r.Fail(field, "must not hold credentials in the URL")
		return
	}
	if u.Scheme == "http" && !rule.InsecureHTTP && !netx.Loopback(u.Hostname()) {
		r.Fail(field, "uses plain http to %s; use https (or set insecure_http: true inside a trusted network)", u.Hostname())
	}
}
