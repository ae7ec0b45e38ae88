package delivery_test

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/internal/delivery"
)

func TestParseHeader(t *testing.T) {
	t.Parallel()
	good := map[string]delivery.Header{
		"Authorization=Bearer {github-mcp}":  {Name: "Authorization", Template: "Bearer {github-mcp}"},
		"x-api-key={k1}":                     {Name: "X-Api-Key", Template: "{k1}"},
		" X-Pair = {a}:{b.c_d}":              {Name: "X-Pair", Template: " {a}:{b.c_d}"},
		"X-Json={{\"k\": \"{tok}\"}}":        {Name: "X-Json", Template: "{{\"k\": \"{tok}\"}}"},
		"Authorization=Basic {a}={b}":        {Name: "Authorization", Template: "Basic {a}={b}"},
		"Cookie=session={sess}; theme=light": {Name: "Cookie", Template: "session={sess}; theme=light"},
	}
	for in, want := range good {
		got, err := delivery.ParseHeader(in)
		if err != nil || got != want {
			t.Errorf("ParseHeader(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	bad := map[string]string{
		"Authorization":                 "want Name=Template",
		"=Bearer {a}":                   "want Name=Template",
		"Bad Name=Bearer {a}":           "not a valid HTTP header name",
		"Authorization=Bearer literal":  "names no credential",
		"Authorization=Bearer {Upper}":  "hold no credential id",
		"Authorization=Bearer {a":       "is not closed",
		"Authorization=Bearer a}":       "unmatched '}'",
		"Authorization=Bearer {}":       "hold no credential id",
		"Authorization=Bearer {a b}":    "hold no credential id",
		"Authorization=Bearer {{a}}":    "names no credential",
		"Authorization=Bearer {-a}":     "hold no credential id",
		"X=" + strings.Repeat("{", 201): "is not closed",
	}
	for in, want := range bad {
		_, err := delivery.ParseHeader(in)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParseHeader(%q) error = %v; want one containing %q", in, err, want)
		}
	} // A literal secret pasted into a malformed header is not repeated in
	// the error (errors reach stderr and logs).
	const canary = "canary-literal-token-3c9e71"
	for _, in := range []string{canary, "Authorization=Bearer " + canary + "}", "Authorization=Bearer {" + canary, "Authorization=Bearer {" + strings.ToUpper(canary) + "}"} {
		if _, err := delivery.ParseHeader(in); err == nil || strings.Contains(strings.ToLower(err.Error()), canary) {
			t.Errorf("ParseHeader of a malformed header holding a literal: %v", err)
		}
	}
}

func TestExpand(t *testing.T) {
	t.Parallel()
	vals := map[string]string{"a": "AAA", "b": "B{b}B", "c": ""}
	calls := map[string]int{}
	read := func(id string) (string, error) {
		calls[id]++
		v, ok := vals[id]
		if !ok {
			return "", delivery.ErrNotFound
		}
		return v, nil
	}
	cases := map[string]string{
		"Bearer {a}":    "Bearer AAA",
		"{a}:{b}":       "AAA:B{b}B", // a value is never expanded again
		"{a}{a}{a}":     "AAAAAAAAA",
		"x{{y}}{c}z":    "x{y}z",
		"{{{a}}}":       "{AAA}",
		"no braces {a}": "no braces AAA",
	}
	for in, want := range cases {
		clear(calls)
		got, err := delivery.Expand(in, read)
		if err != nil || got != want {
			t.Errorf("Expand(%q) = %q, %v; want %q", in, got, err, want)
		}
		for id, n := range calls {
			if n != 1 {
				t.Errorf("Expand(%q) read %s %d times; want once", in, id, n)
			}
		}
	}
	got, err := delivery.Expand("{a} {missing}", read)
	if got != "" || !errors.Is(err, delivery.ErrNotFound) || !strings.Contains(err.Error(), `"missing"`) {
		t.Errorf("Expand with a missing credential = %q, %v; want \"\" and an error naming it, wrapping ErrNotFound", got, err)
	}
	if strings.Contains(err.Error(), "AAA") {
		t.Errorf("the error holds another credential's value: %v", err)
	}
}

func TestExpandHeaders(t *testing.T) {
	t.Parallel()
	hs := []delivery.Header{
		{Name: "Authorization", Template: "Bearer {a}"},
		{Name: "X-Both", Template: "{a}/{b}"},
	}
	n := 0
	got, err := delivery.ExpandHeaders(hs, func(id string) (string, error) {
		n++
		return strings.ToUpper(id) + "-value", nil
	})
	want := map[string]string{"Authorization": "Bearer A-value", "X-Both": "A-value/B-value"}
	if err != nil || !maps.Equal(got, want) {
		t.Fatalf("ExpandHeaders = %v, %v; want %v", got, err, want)
	}
	if n != 2 {
		t.Errorf("read called %d times for 2 distinct credentials", n)
	}
	// A value that would split the header is refused, without echoing it.
	got, err = delivery.ExpandHeaders(hs, func(string) (string, error) { return "CANARY\r\nX-Evil: 1", nil })
	if got != nil || err == nil || strings.Contains(err.Error(), "CANARY") {
		t.Errorf("a value with CR LF: %v, %v; want no headers and an error that does not quote the value", got, err)
	}
	// Any failure yields no header at all.
	got, err = delivery.ExpandHeaders(hs, func(id string) (string, error) {
		if id == "b" {
			return "", delivery.ErrForbidden
		}
		return "ok", nil
	})
	if got != nil || !errors.Is(err, delivery.ErrForbidden) || !strings.Contains(err.Error(), "X-Both") {
		t.Errorf("one unreadable credential: %v, %v; want nil headers and an error naming header and cause", got, err)
	}
}

// TestParseTemplate covers the parsed form `rotator proxy` renders at each
// cutover (and `rotator headers` checks its templates with).
func TestParseTemplate(t *testing.T) {
	t.Parallel()
	tm, err := delivery.ParseTemplate("Basic {user}:{pass} {{user}} {user}")
	if err != nil {
		t.Fatal(err)
	}
	if got := tm.Credentials(); !slices.Equal(got, []string{"user", "pass"}) {
		t.Errorf("Credentials = %v; want [user pass]", got)
	}
	got, err := tm.Render(func(id string) string { return strings.ToUpper(id) + "{x}" })
	if want := "Basic USER{x}:PASS{x} {user} USER{x}"; err != nil || got != want {
		t.Errorf("Render = %q, %v; want %q", got, err, want)
	}
	// A value that would split the header is refused, naming the
	// credential, not the value.
	_, err = tm.Render(func(string) string { return "CANARY\r\nX-Evil: 1" })
	if err == nil || strings.Contains(err.Error(), "CANARY") || !strings.Contains(err.Error(), `"user"`) {
		t.Errorf("Render of a value with CR LF: %v", err)
	}
	tok := "ghp_" + "0123456789abcdefghijABCDEFGHIJ012345"
	bad := map[string]string{
		"Bearer literal":      "template names no credential",
		"{{a}}":               "template names no credential",
		"Bearer {a":           "is not closed",
		"Bearer a} {b}":       "unmatched '}'",
		"Bearer {Upper}":      "hold no credential id",
		tok + " {a}":          "looks like a",
		"x\x01y {a}":          "not allowed in an HTTP header value",
		"{a}" + "\r\nX: {b}":  "not allowed in an HTTP header value",
		"Bearer {" + tok + "": "is not closed",
	}
	for in, want := range bad {
		_, err := delivery.ParseTemplate(in)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.HasPrefix(err.Error(), "template") {
			t.Errorf("ParseTemplate(%q) error = %v; want one starting with template, containing %q", in, err, want)
		}
		if err != nil && strings.Contains(err.Error(), tok) {
			t.Errorf("ParseTemplate(%q): the error repeats the token", in)
		}
	}
	// rotator headers refuses a token in the literal text too.
	if _, err := delivery.ParseHeader("Authorization=Bearer {a} " + tok); err == nil || strings.Contains(err.Error(), tok) || !strings.Contains(err.Error(), "looks like a") {
		t.Errorf("ParseHeader with a literal token: %v", err)
	}
	for in, want := range map[string]bool{"github-mcp": true, "a.b_c-1": true, "Upper": false, "-a": false, "": false, strings.Repeat("a", 129): false} {
		if got := delivery.IsCredentialID(in); got != want {
			t.Errorf("IsCredentialID(%q) = %v", in, got)
		}
	}
}
