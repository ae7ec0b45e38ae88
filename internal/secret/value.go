// Package secret holds the primitives every other package uses to handle
// secret material: the Value type that refuses to print itself, references to
// secrets kept elsewhere (${env:...}, ${file:...}, ${aws-sm:...}), AES-256-GCM
// sealing under a master key, keyed fingerprints, and a slog handler that
// scrubs secrets from log records.
//
// The rule this package enforces: a secret value leaves a Value only through
// an explicit call to Reveal.
package secret

import (
	"crypto/subtle"
	"fmt"
	"log/slog"
)

// Redacted is what every formatting path of a Value prints.
const Redacted = "[REDACTED]"

// Value is a secret. Its zero value is the empty secret. Every way of
// printing, logging or encoding a Value yields "[REDACTED]"; only Reveal
// returns the bytes. A Value is immutable: Reveal returns a copy.
type Value struct {
	// p points at the bytes, held as a string, rather than holding them, so
	// that reflection-based printing which cannot call Format (fmt on an
	// unexported struct field, or a bad verb) shows an address, never the
	// bytes: fmt expands pointers to structs, slices and arrays but not
	// pointers to strings.
	p *string
	// noCompare keeps Value non-comparable: == on two Values would compare
	// pointers, not secrets; use Equal.
	noCompare [0]func()
}

// str returns the secret as a string without copying.
func (v Value) str() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

// bytes returns the secret as a fresh byte slice.
func (v Value) bytes() []byte { return []byte(v.str()) }

// New returns a Value holding a copy of b.
func New(b []byte) Value {
	if len(b) == 0 {
		return Value{}
	}
	c := string(b)
	return Value{p: &c}
}

// NewString returns a Value holding s.
func NewString(s string) Value {
	if s == "" {
		return Value{}
	}
	return Value{p: &s}
}

// Reveal returns a copy of the secret bytes. Call it only at the point where
// the secret must cross a boundary (a provider API, a target, a child
// process environment).
func (v Value) Reveal() []byte {
	if v.Len() == 0 {
		return nil
	}
	return v.bytes()
}

// RevealString returns the secret as a string. See Reveal.
func (v Value) RevealString() string { return v.str() }

// IsZero reports whether the Value is empty.
func (v Value) IsZero() bool { return len(v.str()) == 0 }

// Len returns the length of the secret in bytes.
func (v Value) Len() int { return len(v.str()) }

// Equal reports whether two values hold the same bytes, in constant time.
func (v Value) Equal(o Value) bool { return subtle.ConstantTimeCompare(v.bytes(), o.bytes()) == 1 }

// String implements fmt.Stringer.
func (v Value) String() string { return Redacted }

// GoString implements fmt.GoStringer.
func (v Value) GoString() string { return Redacted }

// Format implements fmt.Formatter so that every verb (%v, %+v, %#v, %s, %q,
// %x, ...) prints the redaction marker.
func (v Value) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(Redacted)) }

// MarshalJSON implements json.Marshaler.
func (v Value) MarshalJSON() ([]byte, error) { return []byte(`"` + Redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler.
func (v Value) MarshalText() ([]byte, error) { return []byte(Redacted), nil }

// LogValue implements slog.LogValuer.
func (v Value) LogValue() slog.Value { return slog.StringValue(Redacted) }

var (
	_ fmt.Stringer   = Value{}
	_ fmt.Formatter  = Value{}
	_ slog.LogValuer = Value{}
)
