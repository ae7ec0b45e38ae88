package sqlstore

import (
	"encoding/json"
	"maps"
	"testing"
)

// scanFlatStringMap either agrees with encoding/json or declines.
func FuzzScanFlatStringMap(f *testing.F) {
	for _, s := range []string{
		`{}`, ` { } `, `{"team": "platform", "env": "prod"}`, `{"a":"b","a":"c"}`, `{"k":""}`,
		`{"k": "v\"q"}`, `{"k": "\u00e9"}`, `{"k": "é"}`, "{\"k\": \"\xff\"}", `{"k": 1}`, `{"k": null}`,
		`{"a":"b",}`, `{"a" "b"}`, `{"a":"b"} x`, `[]`, `null`, `{"a":"b"`, "{\"a\":\"b\tc\"}",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := scanFlatStringMap(b)
		if !ok {
			return
		}
		var want map[string]string
		if err := json.Unmarshal(b, &want); err != nil {
			t.Fatalf("%q: scanned %v, but encoding/json fails: %v", b, got, err)
		}
		if len(want) == 0 && len(got) == 0 {
			return
		}
		if !maps.Equal(got, want) {
			t.Fatalf("%q: scanned %v; encoding/json gives %v", b, got, want)
		}
	})
}

func TestScanFlatStringMapTakesTheCommonForm(t *testing.T) {
	for _, s := range []string{`{}`, `{"team": "platform", "env": "prod"}`, `{"sha256": "sha256:ab12"}`} {
		if _, ok := scanFlatStringMap([]byte(s)); !ok {
			t.Errorf("%s: declined", s)
		}
	}
	for _, s := range []string{`{"k": "v\"q"}`, `{"k": 1}`, `{"a":"b",}`, "{\"k\": \"\xff\"}"} {
		if _, ok := scanFlatStringMap([]byte(s)); ok {
			t.Errorf("%q: taken; it is for encoding/json", s)
		}
	}
}
