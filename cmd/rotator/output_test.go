package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// failAfter accepts n bytes, then fails every write, as a full disk would.
type failAfter struct {
	n   int
	buf bytes.Buffer
}

var errDiskFull = errors.New("no space left on device")

func (f *failAfter) Write(p []byte) (int, error) {
	if f.buf.Len()+len(p) > f.n {
		return 0, errDiskFull
	}
	return f.buf.Write(p)
}

func TestLostOutputFailsTheCommand(t *testing.T) {
	var stderr bytes.Buffer
	if code := run([]string{"version"}, &failAfter{n: 1 << 20}, &stderr); code != exitOK {
		t.Fatalf("version with a working stdout: exit %d (%s)", code, stderr.String())
	}
	stderr.Reset()
	code := run([]string{"version"}, &failAfter{n: 3}, &stderr)
	if code != exitFailure {
		t.Fatalf("version with a failing stdout: exit %d, want %d", code, exitFailure)
	}
	if !strings.Contains(stderr.String(), "writing the output") || !strings.Contains(stderr.String(), errDiskFull.Error()) {
		t.Errorf("stderr %q, want it to say the output could not be written, and why", stderr.String())
	}

	// Help is written by cobra, which ignores write errors: the lost output
	// is still reported.
	stderr.Reset()
	if code := run([]string{"--help"}, &failAfter{n: 10}, &stderr); code != exitFailure || !strings.Contains(stderr.String(), "writing the output") {
		t.Errorf("--help with a failing stdout: exit %d, stderr %q; want %d and the write error", code, stderr.String(), exitFailure)
	}
}

func TestFitWidths(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		natural []int
		flex    []bool
		avail   int
		want    []int
	}{
		"fits":               {[]int{5, 10, 3}, []bool{false, true, false}, 18, []int{5, 10, 3}},
		"flex column cut":    {[]int{5, 20, 3}, []bool{false, true, false}, 18, []int{5, 10, 3}},
		"widest cut first":   {[]int{4, 30, 12}, []bool{true, true, true}, 30, []int{4, 14, 12}},
		"common cap":         {[]int{30, 30, 3}, []bool{true, true, false}, 23, []int{10, 10, 3}},
		"odd char to widest": {[]int{8, 30, 31}, []bool{true, true, true}, 29, []int{8, 10, 11}},
		"everyone gives way": {[]int{20, 20, 20}, []bool{false, true, false}, 30, []int{10, 10, 10}},
		"at least 1 each":    {[]int{5, 5, 5}, []bool{true, true, true}, 1, []int{1, 1, 1}},
	} {
		t.Run(name, func(t *testing.T) {
			got := fitWidths(tc.natural, tc.flex, tc.avail)
			if !slices.Equal(got, tc.want) {
				t.Errorf("fitWidths(%v, %v, %d) = %v, want %v", tc.natural, tc.flex, tc.avail, got, tc.want)
			}
		})
	}
}

func TestTable(t *testing.T) {
	t.Parallel()
	cols := []column{{name: "ID", flex: true, id: true}, {name: "NAME", flex: true}, {name: "STATE", colour: stateColour}, {name: "EXTRA", wide: true}}
	rows := [][]string{
		{"a-rather-long-identifier", "its name\nspans lines", "healthy", "x"},
		{"b", "ünïcödé-näme-that-is-long", "failing", "y"},
	}
	render := func(tb *table) string {
		var b bytes.Buffer
		tb.w = &b
		for _, r := range rows {
			tb.row(r...)
		}
		if err := tb.flush(); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	a := &app{}
	t.Run("no width: nothing cut, wide columns hidden", func(t *testing.T) {
		got := render(a.newListTable(listOutput{format: formatTable}, cols...))
		want := "ID                        NAME                       STATE\n" +
			"a-rather-long-identifier  its name spans lines       healthy\n" +
			"b                         ünïcödé-näme-that-is-long  failing\n"
		if got != want {
			t.Errorf("got:\n%s\nwant:\n%s", got, want)
		}
	})
	t.Run("width 30: flexible columns cut with an ellipsis", func(t *testing.T) {
		a := &app{term: terminal{width: 30}}
		got := render(a.newListTable(listOutput{format: formatTable}, cols...))
		want := "ID         NAME        STATE\n" +
			"a-rather…  its name …  healthy\n" +
			"b          ünïcödé-n…  failing\n"
		if got != want {
			t.Errorf("got:\n%s\nwant:\n%s", got, want)
		}
		for _, l := range strings.Split(strings.TrimSuffix(got, "\n"), "\n") {
			if n := utf8.RuneCountInString(l); n > 30 {
				t.Errorf("line %q is %d wide", l, n)
			}
		}
	})
	t.Run("wide: every column, nothing cut", func(t *testing.T) {
		a := &app{term: terminal{width: 30}}
		got := render(a.newListTable(listOutput{format: formatWide}, cols...))
		if !strings.Contains(got, "EXTRA") || !strings.Contains(got, "a-rather-long-identifier") || strings.Contains(got, "…") {
			t.Errorf("-o wide:\n%s", got)
		}
	})
	t.Run("no headers", func(t *testing.T) {
		got := render(a.newListTable(listOutput{format: formatTable, noHeaders: true}, cols...))
		if strings.Contains(got, "ID") || strings.Count(got, "\n") != 2 {
			t.Errorf("--no-headers:\n%s", got)
		}
	})
	t.Run("quiet: ids only", func(t *testing.T) {
		got := render(a.newListTable(listOutput{format: formatTable, quiet: true}, cols...))
		if got != "a-rather-long-identifier\nb\n" {
			t.Errorf("-q: %q", got)
		}
	})
	t.Run("colour on a terminal only", func(t *testing.T) {
		a := &app{term: terminal{colour: true}}
		got := render(a.newListTable(listOutput{format: formatTable}, cols...))
		if !strings.Contains(got, "\x1b[32mhealthy\x1b[0m") || !strings.Contains(got, "\x1b[31mfailing\x1b[0m") {
			t.Errorf("no colour:\n%q", got)
		}
		if strings.Contains(strings.SplitN(got, "\n", 2)[0], "\x1b[") {
			t.Errorf("the header is coloured: %q", got)
		}
		if got := render(newTable(nil, "ID", "NAME", "STATE")); strings.Contains(got, "\x1b[") {
			t.Errorf("a plain table is coloured: %q", got)
		}
	})
}

func TestDetectTerminal(t *testing.T) {
	t.Parallel()
	env := func(kv ...string) func(string) string {
		m := map[string]string{}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return func(k string) string { return m[k] }
	}
	var buf bytes.Buffer
	for name, tc := range map[string]struct {
		env  func(string) string
		want terminal
	}{
		"pipe":                  {env(), terminal{}},
		"pipe with COLUMNS":     {env("COLUMNS", "120"), terminal{width: 120}},
		"bad COLUMNS":           {env("COLUMNS", "wide"), terminal{}},
		"forced":                {env(envForceTTY, "1"), terminal{outTTY: true, errTTY: true, width: 80, colour: true, errColour: true}},
		"forced with COLUMNS":   {env(envForceTTY, "1", "COLUMNS", "100"), terminal{outTTY: true, errTTY: true, width: 100, colour: true, errColour: true}},
		"forced with NO_COLOR":  {env(envForceTTY, "1", "NO_COLOR", "1"), terminal{outTTY: true, errTTY: true, width: 80}},
		"forced with TERM=dumb": {env(envForceTTY, "true", "TERM", "dumb"), terminal{outTTY: true, errTTY: true, width: 80}},
		"force off":             {env(envForceTTY, "0"), terminal{}},
	} {
		t.Run(name, func(t *testing.T) {
			if got := detectTerminal(&stickyWriter{w: &buf}, &buf, tc.env); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
	// A file that is not a terminal is no terminal.
	f, err := os.CreateTemp(t.TempDir(), "out")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if isTTY(&stickyWriter{w: f}) {
		t.Error("a regular file is taken for a terminal")
	}
}

func TestYAMLMatchesJSON(t *testing.T) {
	t.Parallel()
	type inner struct {
		When  time.Time `json:"when"`
		Empty []string  `json:"empty"`
	}
	v := struct {
		Zeta    string            `json:"zeta"`
		Alpha   *string           `json:"alpha"`
		Looks   []string          `json:"looks"`
		Number  float64           `json:"number"`
		Omitted string            `json:"omitted,omitempty"`
		Inner   inner             `json:"inner"`
		Labels  map[string]string `json:"labels"`
		Lines   string            `json:"lines"`
	}{
		Zeta: "first", Looks: []string{"true", "12", "null", "2026-01-01", "a: b", "- x"}, Number: 1.5,
		Inner:  inner{When: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Empty: []string{}},
		Labels: map[string]string{"b": "2", "a": "1"}, Lines: "one\ntwo",
	}
	y, err := toYAML(v)
	if err != nil {
		t.Fatal(err)
	}
	want := `zeta: first
alpha: null
looks:
  - "true"
  - "12"
  - "null"
  - "2026-01-01"
  - 'a: b'
  - '- x'
number: 1.5
inner:
  when: "2026-01-02T03:04:05Z"
  empty: []
labels:
  a: "1"
  b: "2"
lines: |-
  one
  two
`
	if string(y) != want {
		t.Errorf("YAML:\n%s\nwant:\n%s", y, want)
	}
	// Read back, it is the JSON object.
	var fromYAML, fromJSON any
	if err := yaml.Unmarshal(y, &fromYAML); err != nil {
		t.Fatal(err)
	}
	j, _ := json.Marshal(v)
	if err := json.Unmarshal(j, &fromJSON); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(jsonRoundTrip(t, fromYAML), fromJSON) {
		t.Errorf("YAML reads back as %v, JSON as %v", fromYAML, fromJSON)
	}
}

// jsonRoundTrip passes v through JSON, so that YAML's ints compare equal to
// JSON's float64s.
func jsonRoundTrip(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestProgress(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	var tty bytes.Buffer
	p := &progress{w: &tty, tty: true, every: time.Second, now: clock}
	p.update("1/3")
	p.update("2/3")
	p.done("3/3 done")
	if got, want := tty.String(), "\r\x1b[K1/3\r\x1b[K2/3\r\x1b[K3/3 done\n"; got != want {
		t.Errorf("on a terminal: %q, want %q", got, want)
	}
	var log bytes.Buffer
	p = &progress{w: &log, every: time.Second, now: clock}
	p.update("1/3")
	p.update("2/3") // within the interval: not printed
	now = now.Add(time.Second)
	p.update("2/3 later")
	p.done("3/3 done")
	if got, want := log.String(), "1/3\n2/3 later\n3/3 done\n"; got != want {
		t.Errorf("elsewhere: %q, want %q", got, want)
	}
}
