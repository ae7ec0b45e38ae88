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

func FuzzFlatStrings(f *testing.F)   { fuzzLikeJSON(f, decodeStrings) }
func FuzzFlatStringMap(f *testing.F) { fuzzLikeJSON(f, decodeStringMap) }

// fuzzLikeJSON checks that decode gives what json.Unmarshal gives (empty
// as nil), and fails where it does.
func fuzzLikeJSON[T any](f *testing.F, decode func([]byte) (T, error)) {
	for _, s := range flatSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, gerr := decode([]byte(in))
		var want T
		var werr error
		if len(in) > 0 {
			werr = json.Unmarshal([]byte(in), &want)
		}
		if reflect.ValueOf(want).Len() == 0 {
			var zero T
			want = zero
		}
		if (gerr != nil) != (werr != nil) || (werr == nil && !reflect.DeepEqual(got, want)) {
			t.Fatalf("decode(%q) = %#v, %v; encoding/json gives %#v, %v", in, got, gerr, want, werr)
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
