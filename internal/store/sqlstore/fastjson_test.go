package sqlstore

import (
	"encoding/json"
	"reflect"
	"testing"
)

// The fast scanners must give what encoding/json gives, or step aside.
var flatSeeds = []string{
	`[]`, ` [ ] `, `["a"]`, `["a", "b"]`, `["a","b"]`, "[\"a\",\n\t\"b\"]", `["a",]`, `["a" "b"]`, `[`, `["a"`,
	`["é", "日本"]`, "[\"\xff\"]", `["a\"b"]`, `["\u00e9"]`, `["a\\b"]`, `[1]`, `[null]`, `null`, `["a"]x`,
	`{}`, ` { } `, `{"team": "bench", "shard": "3"}`, `{"team":"bench","shard":"3"}`, `{"a": "1", "a": "2"}`,
	`{"a": 1}`, `{"a": {"b": "c"}}`, `{"a": "b",}`, `{"a" "b"}`, `{"a": "b"`, `{"a": "b"}}`, `{"a\n": "b"}`,
	`{"sha256": "sha256:00ff", "granted_scope": "not_reported"}`, "{\"k\": \"\x01\"}", `{"k": "\t"}`, `"a"`, ``, ` `,
}

func FuzzFlatStrings(f *testing.F) {
	for _, s := range flatSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, gerr := decodeStrings([]byte(in))
		var want []string
		werr := error(nil)
		if len(in) > 0 {
			werr = json.Unmarshal([]byte(in), &want)
		}
		if len(want) == 0 {
			want = nil
		}
		if (gerr != nil) != (werr != nil) || (werr == nil && !reflect.DeepEqual(got, want)) {
			t.Fatalf("decodeStrings(%q) = %q, %v; encoding/json gives %q, %v", in, got, gerr, want, werr)
		}
	})
}

func FuzzFlatStringMap(f *testing.F) {
	for _, s := range flatSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, gerr := decodeStringMap([]byte(in))
		var want map[string]string
		werr := error(nil)
		if len(in) > 0 {
			werr = json.Unmarshal([]byte(in), &want)
		}
		if len(want) == 0 {
			want = nil
		}
		if (gerr != nil) != (werr != nil) || (werr == nil && !reflect.DeepEqual(got, want)) {
			t.Fatalf("decodeStringMap(%q) = %q, %v; encoding/json gives %q, %v", in, got, gerr, want, werr)
		}
	})
}

// TestFlatScannersTakeTheCommonShapes checks the fast path is taken for
// what the stores write, so the fuzz targets above compare it and not
// only the fallback.
func TestFlatScannersTakeTheCommonShapes(t *testing.T) {
	for _, in := range []string{`["a", "b"]`, `["a","b"]`, `[]`} {
		if _, ok := scanFlatStrings([]byte(in)); !ok {
			t.Errorf("scanFlatStrings(%q) fell back", in)
		}
	}
	for _, in := range []string{`{"team": "bench", "shard": "3"}`, `{"team":"bench"}`, `{}`, `{"é": "日本"}`} {
		if _, ok := scanFlatStringMap([]byte(in)); !ok {
			t.Errorf("scanFlatStringMap(%q) fell back", in)
		}
	}
	for _, in := range []string{`["a\"b"]`, "[\"\xff\"]", `{"a": 1}`, `["a"]x`} {
		if _, ok := scanFlatStrings([]byte(in)); ok {
			t.Errorf("scanFlatStrings(%q) took the fast path", in)
		}
	}
}
