package scan

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/config"
)

// leaves maps the path of every scalar of a JSON tree to its raw bytes.
func leaves(b []byte, n *jnode, path string, out map[string]string) {
	switch n.kind {
	case 'o':
		for _, m := range n.members {
			leaves(b, m.val, path+"."+m.key, out)
		}
	case 'a':
		for i, it := range n.items {
			leaves(b, it, fmt.Sprintf("%s[%d]", path, i), out)
		}
	default:
		out[path] = string(b[n.start:n.end])
	}
}

func TestFix(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secrets, _ := fillCorpus(t, "testdata/corpus", dir, 9)
	values := plantedValues(t, dir, secrets)
	repo, _ := filepath.Abs("../..")
	cases := map[string]struct {
		file   string
		strict bool // the client reads strict JSON
	}{
		"claude desktop": {file: "mcp-clients/claude-desktop/claude_desktop_config.json", strict: true},
		"vscode":         {file: "mcp-clients/vscode/.vscode/mcp.json"},
		"cursor":         {file: "mcp-clients/cursor/.cursor/mcp.json", strict: true},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(dir, tc.file)
			before, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			exposed := 0
			for _, f := range Bytes(path, before) {
				if f.Kind == KindMCPConfig {
					exposed++
				}
			}
			res, err := Fix(path, time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC))
			if err != nil {
				t.Fatal(err)
			}
			if len(res.NotFixed) > 0 {
				t.Fatalf("not fixed: %q", res.NotFixed)
			}
			after, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			// The backup is the original, mode 0600.
			bak, err := os.ReadFile(res.Backup)
			if err != nil || string(bak) != string(before) {
				t.Fatalf("backup %s differs from the original (err %v)", res.Backup, err)
			}
			if st, _ := os.Stat(res.Backup); st.Mode().Perm() != 0o600 {
				t.Errorf("backup mode %v, want 0600", st.Mode().Perm())
			}
			// The rewritten file parses, as strict JSON where the client
			// wants it.
			newRoot, err := parseJSONC(after)
			if err != nil {
				t.Fatalf("rewritten file does not parse: %v\n%s", err, after)
			}
			if tc.strict && !json.Valid(after) {
				t.Fatalf("rewritten file is not strict JSON:\n%s", after)
			}
			// Re-scan is clean.
			for _, f := range Bytes(path, after) {
				t.Errorf("after --fix: %s:%d:%d %s %s", tc.file, f.Line, f.Column, f.Rule, f.Preview)
			}
			// Every other field is kept byte for byte.
			oldRoot, _ := parseJSONC(before)
			oldLeaves, newLeaves := map[string]string{}, map[string]string{}
			leaves(before, oldRoot, "", oldLeaves)
			leaves(after, newRoot, "", newLeaves)
			kept := 0
			for p, raw := range oldLeaves {
				if editedPath(res.edited, strings.TrimPrefix(p, ".")) {
					continue
				}
				kept++
				if newLeaves[p] != raw {
					t.Errorf("%s changed: %s -> %s", p, raw, newLeaves[p])
				}
			}
			if kept < 5 {
				t.Errorf("only %d fields outside the edits; the test compares too little", kept)
			}
			// No value anywhere in what Fix wrote or says.
			said := string(after) + string(res.Config) + strings.Join(res.Changes, "\n") + strings.Join(res.Todo, "\n")
			for _, v := range values {
				if strings.Contains(said, v) {
					t.Fatalf("a planted value survived the fix or appears in its output")
				}
			}
			if len(res.Changes) != exposed {
				t.Errorf("%d changes for %d exposed values: %q", len(res.Changes), exposed, res.Changes)
			}
			// The configuration printed validates.
			if _, err := config.Parse(path+".rotator.yaml", res.Config, config.Options{BaseDir: repo, CheckRunbooks: true}); err != nil {
				t.Fatalf("configuration printed by --fix does not validate: %v\n%s", err, res.Config)
			}
			t.Logf("%s:\n%s\nchanges: %q\ntodo: %q", tc.file, after, res.Changes, res.Todo)
		})
	}

	t.Run("exec and proxy shapes", func(t *testing.T) {
		t.Parallel()
		b := []byte(`{"mcpServers": {
  "gh": {"command": "npx", "args": ["-y", "server-github"], "env": {"GITHUB_TOKEN": "` + values[0] + `", "LOG": "1"}},
  "pg": {"command": "npx", "args": ["server-postgres", "postgresql://u:` + "Xk9mQ2pLr7zz" + `@db:5432/app"]},
  "remote": {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": "Bearer ` + values[0] + `x"}}
}}`)
		path := filepath.Join(t.TempDir(), "claude_desktop_config.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		res, err := Fix(path, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		after, _ := os.ReadFile(path)
		var cfg struct {
			MCPServers map[string]struct {
				Command string            `json:"command"`
				Args    []string          `json:"args"`
				Env     map[string]string `json:"env"`
				URL     string            `json:"url"`
				Headers map[string]string `json:"headers"`
			} `json:"mcpServers"`
		}
		if err := json.Unmarshal(after, &cfg); err != nil {
			t.Fatal(err)
		}
		gh := cfg.MCPServers["gh"]
		if want := []string{"exec", "--env", "GITHUB_TOKEN=gh-github-token", "--", "npx", "-y", "server-github"}; gh.Command != "rotator" || strings.Join(gh.Args, " ") != strings.Join(want, " ") {
			t.Errorf("gh: %s %q, want rotator %q", gh.Command, gh.Args, want)
		}
		if _, ok := gh.Env["GITHUB_TOKEN"]; ok || gh.Env["LOG"] != "1" {
			t.Errorf("gh env = %v, want only LOG", gh.Env)
		}
		pg := cfg.MCPServers["pg"]
		if want := `exec npx server-postgres "$DATABASE_URL"`; pg.Command != "rotator" || pg.Args[len(pg.Args)-1] != want || pg.Args[len(pg.Args)-3] != "sh" {
			t.Errorf("pg: %s %q, want sh -c %q", pg.Command, pg.Args, want)
		}
		r := cfg.MCPServers["remote"]
		if r.URL != "http://127.0.0.1:8931/mcp" || len(r.Headers) != 0 {
			t.Errorf("remote: url %s headers %v, want the proxy and no header", r.URL, r.Headers)
		}
		todo := strings.Join(res.Todo, "\n")
		if !strings.Contains(todo, "rotator proxy --listen 127.0.0.1:8931 --upstream https://mcp.example.com --credential remote-authorization --header 'Authorization=Bearer {remote-authorization}'") {
			t.Errorf("todo lacks the proxy command:\n%s", todo)
		}
	})
}

func editedPath(edited map[string]bool, p string) bool {
	for e := range edited {
		if p == e || strings.HasPrefix(p, e+".") || strings.HasPrefix(p, e+"[") {
			return true
		}
	}
	return false
}
