package secret

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// valueCanary is a secret that must never appear in printed output.
const valueCanary = "canary-Vx9TqL2mPz7RwK4sNf8Hc1Jd"

func TestValueFormatting(t *testing.T) {
	t.Parallel()

	v := NewString(valueCanary)
	type exported struct {
		Name   string
		Secret Value
	}
	type unexported struct {
		name   string
		secret Value
	}
	type nested struct {
		Inner *exported
		List  []Value
		Map   map[string]Value
	}
	subjects := map[string]any{
		"value":             v,
		"pointer to value":  &v,
		"exported field":    exported{Name: "n", Secret: v},
		"pointer to struct": &exported{Name: "n", Secret: v},
		"unexported field":  unexported{name: "n", secret: v},
		"nested":            nested{Inner: &exported{Secret: v}, List: []Value{v}, Map: map[string]Value{"k": v}},
	}
	verbs := []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%T %[1]v"}
	for name, subject := range subjects {
		for _, verb := range verbs {
			got := fmt.Sprintf(verb, subject)
			if strings.Contains(got, valueCanary) || strings.Contains(got, fmt.Sprintf("%x", valueCanary)) ||
				strings.Contains(got, fmt.Sprintf("%X", valueCanary)) || strings.Contains(got, fmt.Sprint([]byte(valueCanary))) {
				t.Errorf("%s with %s leaks the secret: %s", name, verb, got)
			}
		}
	}
	// The redaction marker, not just an absence, for the direct forms.
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x"} {
		if got := fmt.Sprintf(verb, v); got != Redacted {
			t.Errorf("Sprintf(%q, v) = %q, want %q", verb, got, Redacted)
		}
	}
	if got := fmt.Sprint(v); got != Redacted {
		t.Errorf("Sprint(v) = %q, want %q", got, Redacted)
	}
}

func TestValueJSON(t *testing.T) {
	t.Parallel()

	v := NewString(valueCanary)
	type doc struct {
		Secret  Value            `json:"secret"`
		Ptr     *Value           `json:"ptr"`
		List    []Value          `json:"list"`
		ByName  map[string]Value `json:"by_name"`
		Omitted Value            `json:"-"`
	}
	b, err := json.Marshal(doc{Secret: v, Ptr: &v, List: []Value{v}, ByName: map[string]Value{"k": v}, Omitted: v})
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	if strings.Contains(string(b), valueCanary) {
		t.Fatalf("json leaks the secret: %s", b)
	}
	want := `{"secret":"[REDACTED]","ptr":"[REDACTED]","list":["[REDACTED]"],"by_name":{"k":"[REDACTED]"}}`
	if string(b) != want {
		t.Fatalf("json = %s, want %s", b, want)
	}
}

func TestValueReveal(t *testing.T) {
	t.Parallel()

	src := []byte(valueCanary)
	v := New(src)
	src[0] = 'X'
	if got := v.RevealString(); got != valueCanary {
		t.Fatalf("New did not copy its input: got %q", got)
	}
	out := v.Reveal()
	out[0] = 'X'
	if got := v.RevealString(); got != valueCanary {
		t.Fatalf("Reveal did not return a copy: value became %q", got)
	}
	if !v.Equal(NewString(valueCanary)) || v.Equal(NewString(valueCanary+"x")) || v.Equal(Value{}) {
		t.Fatal("Equal compares wrongly")
	}
	if v.Len() != len(valueCanary) || v.IsZero() || !(Value{}).IsZero() || !New(nil).IsZero() || !NewString("").IsZero() {
		t.Fatal("Len or IsZero wrong")
	}
	if (Value{}).Reveal() != nil {
		t.Fatal("Reveal of the zero Value is not nil")
	}
}

func TestIsSensitiveKey(t *testing.T) {
	t.Parallel()
	cases := map[string]bool{
		"client_secret": true, "api_key": true, "Authorization": true, "db-password": true, "token": true,
		"private_key": true, "cookie": true, "admin_dsn": true,
		"token_url": false, "password_length": false, "token_ttl": false, "max_tokens": false, "key_id": false,
		"secret_id": false, "auth_style": false, "scope_policy": false, "consumer": false, "path": false,
	}
	for name, want := range cases {
		if got := IsSensitiveKey(name); got != want {
			t.Errorf("IsSensitiveKey(%q) = %v, want %v", name, got, want)
		}
	}
}
