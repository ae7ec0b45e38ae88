package scan

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/config"
)

func TestImport(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	secrets, _ := fillCorpus(t, "testdata/corpus", dir, 5)
	var files []string
	_ = filepath.WalkDir(filepath.Join(dir, "mcp-clients"), func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			files = append(files, p)
		}
		return err
	})
	out, n, err := Import(files, time.Date(2026, 12, 5, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	planted := 0
	for _, p := range secrets {
		if p.kind == "S" && strings.Contains(p.file, "mcp-clients") {
			planted++
		}
	}
	if n != planted {
		t.Errorf("imported %d credentials, want one per planted secret in the client configs (%d)", n, planted)
	}
	// The output is a valid rotator configuration (runbooks resolve from
	// the repository) and holds no value.
	cfgPath := filepath.Join(dir, "imported.yaml")
	if err := os.WriteFile(cfgPath, out, 0o600); err != nil {
		t.Fatal(err)
	}
	repo, _ := filepath.Abs("../..")
	cfg, err := config.Parse(cfgPath, out, config.Options{BaseDir: repo, CheckRunbooks: true})
	if err != nil {
		t.Fatalf("imported configuration does not validate: %v\n%s", err, out)
	}
	if len(cfg.Credentials) != n {
		t.Fatalf("config has %d credentials, want %d", len(cfg.Credentials), n)
	}
	for _, c := range cfg.Credentials {
		if c.Consumer == "" || c.Consumer == "mcp-client" {
			t.Errorf("credential %s has no server as consumer", c.ID)
		}
	}
	if fs := Bytes("imported.yaml", out); len(fs) != 0 {
		t.Errorf("the imported configuration has %d finding(s) of its own, first %s:%d %s\n%s", len(fs), fs[0].File, fs[0].Line, fs[0].Rule, out)
	}
	for _, v := range plantedValues(t, dir, secrets) {
		if strings.Contains(string(out), v) {
			t.Fatalf("the imported configuration holds a planted value")
		}
	}
	if !strings.Contains(string(out), "rotator exec --env GITHUB_PERSONAL_ACCESS_TOKEN=") {
		t.Errorf("no exec delivery for the GitHub token:\n%s", out)
	}

	t.Run("mysql and aws", func(t *testing.T) {
		t.Parallel()
		g := gen{rand.New(rand.NewPCG(11, 12))}
		path := filepath.Join(t.TempDir(), "claude_desktop_config.json")
		b := `{"mcpServers": {
  "shop-db": {"command": "npx", "args": ["mcp-mysql", "mysql://shop:` + g.generate("password/url") + `@mysql.internal:3306/shop"]},
  "aws": {"command": "uvx", "args": ["awslabs.aws-api-mcp-server"], "env": {"AWS_ACCESS_KEY_ID": "` + g.generate("aws-key-id") + `", "AWS_SECRET_ACCESS_KEY": "` + g.generate("aws-secret") + `"}}
}}`
		if err := os.WriteFile(path, []byte(b), 0o600); err != nil {
			t.Fatal(err)
		}
		out, n, err := Import([]string{path}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if n != 2 || !strings.Contains(string(out), "type: mysql-user") || !strings.Contains(string(out), "type: aws-iam-access-key") || !strings.Contains(string(out), `settings: {user: "shop"}`) {
			t.Fatalf("want a mysql-user and an aws-iam-access-key credential (the key pair as one):\n%s", out)
		}
		if _, err := config.Parse(path+".yaml", out, config.Options{BaseDir: repo, CheckRunbooks: true}); err != nil {
			t.Fatalf("does not validate: %v\n%s", err, out)
		}
	})

	t.Run("not an MCP config", func(t *testing.T) {
		t.Parallel()
		_, _, err := Import([]string{filepath.Join(dir, "repo", "config", "app.yaml")}, time.Now())
		if err == nil || !strings.Contains(err.Error(), "not an MCP client configuration") {
			t.Fatalf("err = %v, want 'not an MCP client configuration'", err)
		}
	})
}

// plantedValues reads back the planted secrets' first lines from the
// filled corpus.
func plantedValues(t *testing.T, dir string, ps []*planted) []string {
	t.Helper()
	var out []string
	for _, p := range ps {
		if p.kind != "S" {
			continue
		}
		b, err := os.ReadFile(p.file)
		if err != nil {
			t.Fatal(err)
		}
		line := strings.Split(string(b), "\n")[p.line-1]
		r := []rune(line)
		if p.end-1 <= len(r) {
			out = append(out, string(r[p.col-1:p.end-1]))
		}
	}
	return out
}
