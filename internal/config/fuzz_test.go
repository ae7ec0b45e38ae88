package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// fuzzCanaries are secrets recognisable by their content (a token format
// or randomness), so the loader must never repeat them wherever a mutation
// moves them. (A plain password is only a secret by the key it sits under;
// TestLiteralSecrets covers it.)
var fuzzCanaries = []string{canaryGitHub, canaryAWS, canaryRandom, canarySlack, canaryOpenAI}

// FuzzParse checks that Parse never panics, returns exactly one of a Config
// and an *Errors, gives every error a line, never repeats a secret, and
// gives the same result whether it parses the credentials item by item or
// the document as a whole.
func FuzzParse(f *testing.F) {
	for _, dir := range []string{testdataDir, filepath.Join("..", "..", "examples")} {
		files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	// Layouts of the credentials list that the item-by-item parse splits.
	item := "  - id: a\n" + validCredBody
	f.Add([]byte(header + item + "# between\n" + strings.ReplaceAll(item, "id: a", "id: b")))
	f.Add([]byte(header + strings.ReplaceAll(item, "\n  ", "\n")[2:] + "targets2: {}\n"))
	f.Add([]byte(header + "  - id: a\n    owner: |\n      - text\n" + validCredBody + "  - id: b\n    labels: &l {a: b}\n    owner: *l\n"))
	for _, c := range fuzzCanaries {
		// Mutations cut canaries out of their token context; they must
		// still look random, so that no context lets them through.
		if !looksSecret("0"+c+"0") || !looksSecret("\""+c+"\"") {
			f.Fatalf("canary %q does not look secret inside a word", c)
		}
		f.Add([]byte("providers:\n  gen:\n    type: generated\n    client_secret: " + c + "\n    prefix: " + c + "\n"))
		f.Add([]byte("targets:\n  env:\n    type: file\n    path: x\n    format: \"" + c + "\"\n    mode: " + c + "\n"))
		f.Add([]byte(header + "  - id: a\n    consumer: x\n    provider: " + c + "\n    max_age: " + c + "\n    schedule: \"" + c +
			" * * * *\"\n    window: {start: \"" + c + "\", end: \"02:00\", timezone: " + c + "}\n    runbook: " + c + ".md#" + c +
			"\n    labels: {" + c + ": " + c + "}\n    targets: [{target: " + c + ", key: " + c + "}]\n" + c + ": x\n"))
		f.Add([]byte("x: &a " + c + "\nproviders:\n  gen:\n    type: *a\n    api_key: ${env:" + c + "}\n"))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const name = "fuzz.yaml"
		cfg, err := Parse(name, data, Options{BaseDir: testdataDir, CheckRunbooks: true})
		whole, wholeErr := Parse(name, data, Options{BaseDir: testdataDir, CheckRunbooks: true, whole: true})
		if !reflect.DeepEqual(cfg, whole) || !reflect.DeepEqual(err, wholeErr) {
			t.Fatalf("item by item: %+v, %v\nwhole document: %+v, %v", cfg, err, whole, wholeErr)
		}
		if (cfg == nil) == (err == nil) {
			t.Fatalf("Parse = %v, %v: want exactly one of a Config and an error", cfg, err)
		}
		var list []Error
		if err != nil {
			var errs *Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Parse error %T is not *Errors: %v", err, err)
			}
			if len(errs.List) == 0 {
				t.Fatal("empty *Errors")
			}
			list = errs.List
		} else {
			list = cfg.Warnings
		}
		for _, e := range list {
			if e.Line < 0 || e.File != name || e.Msg == "" {
				t.Fatalf("bad error %+v", e)
			}
			text := e.Error()
			for _, c := range fuzzCanaries {
				if strings.Contains(text, c) {
					t.Fatalf("error repeats a canary secret: %s", text)
				}
			}
		}
	})
}
