package config

import (
	"bytes"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// assertSameAsWhole parses data item by item (where it splits) and as one
// document, and fails unless both give the same Config or the same errors.
// It returns whether the item-by-item parse was used.
func assertSameAsWhole(t *testing.T, name string, data []byte, opts Options) bool {
	t.Helper()
	p := newParser(name, opts, builtin)
	if opts.BaseDir == "" {
		p.opts.BaseDir = filepath.Dir(name)
	}
	_, split := p.parseSplit(io.NewSectionReader(bytes.NewReader(data), 0, int64(len(data))))
	got, gotErr := Parse(name, data, opts)
	opts.whole = true
	want, wantErr := Parse(name, data, opts)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("item by item (split %v): %+v\nwhole document: %+v", split, got, want)
	}
	if !reflect.DeepEqual(gotErr, wantErr) {
		t.Fatalf("item by item (split %v) errors:\n%v\nwhole document errors:\n%v", split, gotErr, wantErr)
	}
	return split
}

func TestSplitMatchesWhole(t *testing.T) {
	item := func(id string) string { return "  - id: " + id + "\n" + validCredBody }
	tests := map[string]struct {
		src   string
		split bool // whether the item-by-item parse applies
	}{
		"plain":               {header + item("a") + item("b"), true},
		"items at col 0":      {header + strings.ReplaceAll(item("a")+item("b"), "\n  ", "\n")[2:], true},
		"comments":            {header + "# team a\n" + item("a") + "\n# team b, at column 0\n   # indented\n" + item("b") + "# trailing\n", true},
		"key comment":         {strings.Replace(header, "credentials:\n", "credentials:   # the inventory\n", 1) + item("a"), true},
		"crlf":                {strings.ReplaceAll(header+item("a")+item("b"), "\n", "\r\n"), true},
		"keys after":          {strings.Replace(header, "targets:", "xtargets:", 1) + item("a") + "providers2: {}\n", true},
		"providers after":     {"targets:\n  env:\n    type: file\n    path: ./run/x.env\ncredentials:\n" + item("a") + "providers:\n  gen:\n    type: generated\n", true},
		"anchor in item":      {header + "  - id: a\n    labels: &l {team: x}\n    owner: *l\n" + validCredBody, true},
		"anchor across":       {header + "  - id: a\n    labels: &l {team: x}\n" + validCredBody + "  - id: b\n    labels: *l\n" + validCredBody, false},
		"anchor in providers": {strings.Replace(header, "type: generated", "type: &t generated", 1) + "  - id: a\n    owner: *t\n" + validCredBody, false},
		"merge key in item":   {header + "  - id: a\n    <<: {owner: x}\n" + validCredBody, true},
		"flow list":           {header[:len(header)-1] + " [{id: a, consumer: x, provider: gen, max_age: 1h, runbook: runbooks/generated.md#rotation}]\n", false},
		"empty":               {header, false},
		"null":                {header + "\n# nothing\n", false},
		"block scalar":        {header + "  - id: a\n    owner: |\n      - not an item\n\n      - nor this\n" + validCredBody + "  - id: b\n    owner: >\n      text\n  - id: c\n" + validCredBody, true},
		"quoted across lines": {header + "  - id: a\n    owner: \"one\n  - two\"\n" + validCredBody, false},
		"plain across lines":  {header + "  - id: a\n    owner: one\n      - two\n" + validCredBody, true},
		"tab indent":          {header + item("a") + "\t- id: b\n", false},
		"second key":          {header + item("a") + "credentials:\n" + item("b"), false},
		"document marker":     {"---\n" + header + item("a"), false},
		"two documents":       {header + item("a") + "---\nx: 1\n", false},
		"directive":           {"%YAML 1.2\n---\n" + header + item("a"), false},
		"duplicate ids":       {header + item("a") + item("a"), true},
		"invalid item":        {header + item("a") + "  - id: B!\n    max_age: soon\n", true},
		"item not a mapping":  {header + "  - just a string\n" + item("a"), true},
		"nested sequences":    {header + "  - - id: a\n", true},
		"syntax error":        {header + item("a") + "  - id: [b\n", false},
		"odd indent":          {header + item("a") + " - id: b\n", false},
		"literal secret":      {header + "  - id: a\n    settings: {password: hunter2-canary-password}\n" + validCredBody, true},
		"bom":                 {"\ufeff" + header + item("a"), true},
		"no newline at end":   {header + strings.TrimSuffix(item("a"), "\n"), true},
		"root not a mapping":  {"- credentials:\n  - x\n", false},
		"unknown top key":     {header + item("a") + "extra: 1\n", true},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			split := assertSameAsWhole(t, filepath.Join(testdataDir, "test.yaml"), []byte(tt.src), Options{CheckRunbooks: true})
			if split != tt.split {
				t.Errorf("parsed item by item: %v, want %v", split, tt.split)
			}
		})
	}
}

// TestScrubLongestFirst checks that a secret containing another is removed
// whole, every time: messages used to depend on map iteration order
// ("got [REDACTED]" or "got \"2[REDACTED]8010\""), which FuzzParse found by
// comparing two parses of one input.
func TestScrubLongestFirst(t *testing.T) {
	t.Parallel()
	inner := canaryAWS[:len(canaryAWS)-3] // itself a suspect
	src := "targets:\n  b:\n    type: file\n    format: 2" + inner + "8010\n  c: " + inner + "\n"
	for range 20 {
		_, err := Parse("fuzz.yaml", []byte(src), Options{BaseDir: testdataDir})
		if err == nil || !strings.Contains(err.Error(), "must be one of dotenv, json, raw, got [REDACTED]\n") {
			t.Fatalf("error does not end the format message with the whole value redacted:\n%v", err)
		}
		assertNoCanary(t, err.Error())
	}
}
