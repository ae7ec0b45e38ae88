package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestLoadLimit(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "big.yaml")
	// Not even YAML: the size is checked before anything is parsed.
	if err := os.WriteFile(path, []byte(strings.Repeat("{[", 600)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := LoadLimit(path, 1000)
	var tooLarge *FileTooLargeError
	if !errors.As(err, &tooLarge) {
		t.Fatalf("LoadLimit = %v, want *FileTooLargeError", err)
	}
	if tooLarge.Size != 1200 || tooLarge.Limit != 1000 || tooLarge.File != path {
		t.Errorf("error = %+v", tooLarge)
	}
	for _, want := range []string{path, "1.2 KiB (1200 bytes)", "over the 1000 bytes limit"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	// At the limit it is parsed (and here found invalid).
	_, err = LoadLimit(path, 1200)
	var errs *Errors
	if !errors.As(err, &errs) {
		t.Errorf("LoadLimit at the limit = %v, want *Errors", err)
	}
	// Load uses the default.
	if err := os.WriteFile(path, make([]byte, DefaultMaxFileSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); !errors.As(err, &tooLarge) || tooLarge.Limit != DefaultMaxFileSize {
		t.Errorf("Load of a file over 16 MiB = %v", err)
	}
}

func TestLoadLimitPipe(t *testing.T) {
	t.Parallel()
	// A file whose size stat cannot tell: the read itself stops at the limit.
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	go func() {
		_, _ = w.Write([]byte(strings.Repeat("# comment\n", 500)))
		_ = w.Close()
	}()
	_, err = LoadLimit(fmt.Sprintf("/dev/fd/%d", r.Fd()), 1000)
	var tooLarge *FileTooLargeError
	if !errors.As(err, &tooLarge) || tooLarge.Size != 1001 {
		t.Fatalf("LoadLimit of a pipe = %v, want *FileTooLargeError with size 1001", err)
	}
}

func TestFieldLimits(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", MaxValueBytes+1)
	list := func(n int) string {
		items := make([]string, n)
		for i := range items {
			items[i] = fmt.Sprintf("s%d", i)
		}
		return "[" + strings.Join(items, ", ") + "]"
	}
	mapping := func(n, from int) string {
		items := make([]string, n)
		for i := range items {
			items[i] = fmt.Sprintf("k%d: v", from+i)
		}
		return "{" + strings.Join(items, ", ") + "}"
	}
	cred := "  - id: a\n" + validCredBody
	tests := map[string]struct {
		src, field, msg string
	}{
		"long value":      {header + cred + "    owner: " + long + " # <-\n", "credentials[0].owner", "is 64.0 KiB (65537 bytes) long, over the limit of 64 KiB per value"},
		"long key":        {header + cred + "    settings:\n      ? " + long + " # <-\n      : x\n", "credentials[0].settings", "over the limit of 64 KiB per value"},
		"long in plugin":  {strings.Replace(header, "type: generated\n", "type: generated\n    prefix: "+long+" # <-\n", 1) + cred, "providers.gen.prefix", "over the limit of 64 KiB per value"},
		"long list":       {header + cred + "    scope: " + list(MaxItems+1) + " # <-\n", "credentials[0].scope", "has 1001 items, over the limit of 1000 per list"},
		"long nested":     {header + cred + "    settings: {a: {b: " + list(MaxItems+1) + "}} # <-\n", "credentials[0].settings.a.b", "has 1001 items, over the limit of 1000 per list"},
		"big mapping":     {header + cred + "    settings: " + mapping(MaxItems+1, 0) + " # <-\n", "credentials[0].settings", "has 1001 entries, over the limit of 1000 per mapping"},
		"many labels":     {header + cred + "    labels: " + mapping(MaxLabels+1, 0) + " # <-\n", "credentials[0].labels", "has 65 labels, over the limit of 64 per credential"},
		"too many labels": {header + cred + "    labels: " + mapping(MaxItems+1, 0) + " # <-\n", "credentials[0].labels", "has 1001 entries, over the limit of 1000 per mapping"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			cfg, err := parseString(tt.src)
			list := errorList(t, cfg, err)
			line := markedLine(t, tt.src)
			found := 0
			for _, e := range list {
				if len(e.Error()) > 1000 {
					t.Errorf("an error of %d bytes: %.200s...", len(e.Error()), e.Error())
				}
				if e.Line == line && e.Field == tt.field && strings.Contains(e.Msg, tt.msg) {
					found++
				}
			}
			if found != 1 {
				t.Errorf("%d errors at line %d, field %s, with %q; got:\n%v", found, line, tt.field, tt.msg, err)
			}
			assertSameAsWhole(t, filepath.Join(testdataDir, "test.yaml"), []byte(tt.src), Options{CheckRunbooks: true})
		})
	}
}

func TestAtTheLimits(t *testing.T) {
	t.Parallel()
	items := make([]string, MaxItems)
	for i := range items {
		items[i] = fmt.Sprintf("s%d", i)
	}
	labels := make([]string, MaxLabels)
	for i := range labels {
		labels[i] = fmt.Sprintf("k%d: v", i)
	}
	src := header + "  - id: a\n" + validCredBody +
		"    owner: " + strings.Repeat("a", MaxValueBytes) + "\n" +
		"    scope: [" + strings.Join(items, ", ") + "]\n" +
		"    labels: {" + strings.Join(labels, ", ") + "}\n"
	cfg, err := parseString(src)
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Credentials[0]
	if len(c.Owner) != MaxValueBytes || len(c.Scope) != MaxItems || len(c.Labels) != MaxLabels {
		t.Errorf("owner %d bytes, %d scopes, %d labels", len(c.Owner), len(c.Scope), len(c.Labels))
	}
}

// TestManyValuesWithoutAliases checks that the alias expansion limit counts
// only what aliases add: settings written out in full may hold any number
// of values in total.
func TestManyValuesWithoutAliases(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	// exec plugins take any credential settings.
	b.WriteString("providers:\n  gen:\n    type: exec\n    command: [/usr/local/bin/mint]\ncredentials:\n")
	items := make([]string, 100)
	for i := range items {
		items[i] = fmt.Sprintf("v%d", i)
	}
	for i := range 1100 { // 110,000 values
		fmt.Fprintf(&b, "  - id: c%d\n%s    settings: {list: [%s]}\n", i, validCredBody, strings.Join(items, ", "))
	}
	cfg, err := parseString(b.String())
	if err != nil {
		t.Fatalf("Parse: %.500v", err)
	}
	if len(cfg.Credentials) != 1100 {
		t.Errorf("%d credentials", len(cfg.Credentials))
	}
}
