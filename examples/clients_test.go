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
		exec, headers := credentialRefs(b)
		if len(exec)+len(headers) == 0 {
			t.Errorf("%s names no credential", f)
		}
		for _, id := range append(exec, headers...) {
			if !strings.Contains(string(inv), "  - id: "+id+"\n") {
				t.Errorf("%s names credential %q, which mcp-servers.yaml does not declare", f, id)
			}
		}
	}
}

var (
	envRef    = regexp.MustCompile(`"--env", "[A-Z_]+=([a-z0-9-]+)"`)
	headerRef = regexp.MustCompile(`\{([a-z0-9-]+)\}`)
)

// credentialRefs returns the credentials a client configuration has
// rotator exec put in a server's environment (--env NAME=ID) and rotator
// headers put in a header ({ID}).
func credentialRefs(b []byte) (exec, headers []string) {
	for _, m := range envRef.FindAllSubmatch(b, -1) {
		exec = append(exec, string(m[1]))
	}
	for _, m := range headerRef.FindAllSubmatch(b, -1) {
		headers = append(headers, string(m[1]))
	}
	return exec, headers
}

// clientCredentials returns the credentials the configurations under
// clients/ have delivered, by command ("exec", "headers").
func clientCredentials(t *testing.T) map[string][]string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("clients", "*"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		exec, headers := credentialRefs(b)
		out["exec"] = append(out["exec"], exec...)
		out["headers"] = append(out["headers"], headers...)
	}
	return out
}
