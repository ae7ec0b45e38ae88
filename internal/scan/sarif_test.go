package scan

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// sarifSchema compiles the SARIF 2.1.0 schema (OASIS, errata 01) vendored
// in testdata.
func sarifSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("testdata/sarif-schema-2.1.0.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	const url = "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(url)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSARIFValidates(t *testing.T) {
	t.Parallel()
	schema := sarifSchema(t)
	dir := t.TempDir()
	fillCorpus(t, "testdata/corpus", dir, 7)
	corpus, err := Scan(context.Background(), []string{dir}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	// Relative paths, as in CI (rotator scan .).
	rel := &Result{Files: corpus.Files}
	for _, f := range corpus.Findings {
		f.File, _ = filepath.Rel(dir, f.File)
		rel.Findings = append(rel.Findings, f)
	}
	cases := map[string]*Result{
		"empty":           {},
		"corpus":          corpus,
		"corpus relative": rel,
	}
	for name, res := range cases {
		t.Run(name, func(t *testing.T) {
			var buf bytes.Buffer
			if err := WriteResult(&buf, FormatSARIF, res, "v1.2.3"); err != nil {
				t.Fatal(err)
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(buf.Bytes()))
			if err != nil {
				t.Fatal(err)
			}
			if err := schema.Validate(inst); err != nil {
				t.Fatalf("SARIF does not validate: %v", err)
			}
			var log struct {
				Runs []struct {
					Results []struct {
						RuleID    string `json:"ruleId"`
						Locations []struct {
							PhysicalLocation struct {
								ArtifactLocation struct {
									URI string `json:"uri"`
								} `json:"artifactLocation"`
							} `json:"physicalLocation"`
						} `json:"locations"`
					} `json:"results"`
				} `json:"runs"`
			}
			if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
				t.Fatal(err)
			}
			if got := len(log.Runs[0].Results); got != len(res.Findings) {
				t.Fatalf("%d results, want %d", got, len(res.Findings))
			}
		})
	}
	// No planted value reaches the SARIF log.
	var buf bytes.Buffer
	if err := WriteResult(&buf, FormatSARIF, corpus, "dev"); err != nil {
		t.Fatal(err)
	}
	for _, f := range corpus.Findings {
		if v := f.Value(); len(v) >= 8 && strings.Contains(buf.String(), v) {
			t.Fatalf("SARIF holds the value of the finding at %s:%d", f.File, f.Line)
		}
	}
	// A schema violation is caught (the test can fail).
	bad := strings.Replace(buf.String(), `"version": "2.1.0"`, `"version": "2.0"`, 1)
	inst, _ := jsonschema.UnmarshalJSON(strings.NewReader(bad))
	if schema.Validate(inst) == nil {
		t.Fatal("a SARIF log with version 2.0 validated")
	}
}
