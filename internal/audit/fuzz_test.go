package audit_test

import (
	"bytes"
	"testing"

	"github.com/rotatorhq/rotator/internal/audit"
)

// FuzzCanonicalJSON checks that the fast path of CanonicalJSON gives the
// same bytes as decoding and re-encoding with encoding/json, and accepts
// and rejects the same documents.
func FuzzCanonicalJSON(f *testing.F) {
	for _, seed := range []string{
		`{"b":1,"a":{"d":[1,2,{"z":null,"y":true}],"c":"x"}}`,
		`{"a":1,"a":2,"b":1,"a":3}`,
		`{"step":"mint","attempt":3,"evidence":{"z":1.50,"a":"fp:0003"}}`,
		` [ -0 , 1e5 , 1.5E-3 , "é" , "\u2028" , "\n" , "<&>" , false ] `,
		`{"k":"v"} x`, `{"k":01}`, `{"k":-}`, `[1,]`, `{,}`, `"\u0000"`, `{"a" 1}`, `{"\u0061":1,"a":2}`,
		`1.`, `.5`, `-`, `tru`, `{"a":"b\"c"}`, `{"":0}`, "{\"a\":\"\x7f\"}",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		got, err := audit.CanonicalJSON(raw)
		want, werr := audit.ReferenceCanonicalJSON(raw)
		if (err == nil) != (werr == nil) {
			t.Fatalf("CanonicalJSON(%q): error %v, reference error %v", raw, err, werr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("CanonicalJSON(%q) = %s, reference %s", raw, got, want)
		}
	})
}
