package examples_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestClientConfigs: the MCP client configurations under clients/ parse,
// and every credential they name (rotator exec --env NAME=ID, rotator
// headers {ID}) is a credential of mcp-servers.yaml; they hold no secret
// (the repository self-scan in internal/scan checks that).
func TestClientConfigs(t *testing.T) {
	t.Parallel()
	inv, err := os.ReadFile("mcp-servers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join("clients", "*"))
	if err != nil || len(files) < 8 {
		t.Fatalf("client configurations: %v %v", files, err)
	}
	envRef := regexp.MustCompile(`"--env", "[A-Z_]+=([a-z0-9-]+)"`)
	headerRef := regexp.MustCompile(`\{([a-z0-9-]+)\}`)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(f, ".json") {
			var v map[string]any
			if err := json.Unmarshal(b, &v); err != nil {
				t.Errorf("%s: %v", f, err)
			}
		}
		refs := envRef.FindAllStringSubmatch(string(b), -1)
		refs = append(refs, headerRef.FindAllStringSubmatch(string(b), -1)...)
		if len(refs) == 0 {
			t.Errorf("%s names no credential", f)
		}
		for _, r := range refs {
			if !strings.Contains(string(inv), "  - id: "+r[1]+"\n") {
				t.Errorf("%s names credential %q, which mcp-servers.yaml does not declare", f, r[1])
			}
		}
	}
}
