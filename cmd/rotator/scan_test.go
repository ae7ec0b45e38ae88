package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runStdin runs rotator in dir with stdin.
func runStdin(t *testing.T, c *cli, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, rotatorBin, args...)
	cmd.Dir, cmd.Env = c.dir, c.env
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	r := result{args: args, stdout: stdout.String(), stderr: stderr.String()}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		r.code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	c.printed = append(c.printed, r.stdout, r.stderr)
	c.mu.Unlock()
	return r
}

func TestScanCLI(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "sqlite")
	// Token-shaped values are assembled here so that this file holds none.
	token := "gh" + "p_" + "Zq8Xv2Lm4Np6Rt9Ws3Yu5Ka7Hd1Gf0Jc2Be4Ti"
	// rotator:ignore: a test fixture (the password must look real)
	password := "Vq7#mP2x!Lk9" + "wR4z"
	clean := c.path("clean")
	writeFile(t, filepath.Join(clean, ".env"), "GITHUB_TOKEN=${env:GITHUB_TOKEN}\nLOG_LEVEL=debug\n")
	dirty := c.path("dirty")
	writeFile(t, filepath.Join(dirty, "claude_desktop_config.json"), `{
  "mcpServers": {
    "github": {
      "command": "npx",
      "args": ["-y", "@modelcontextprotocol/server-github"],
      "env": {"GITHUB_PERSONAL_ACCESS_TOKEN": "`+token+`", "LOG": "info"}
    }
  }
}
`)
	writeFile(t, filepath.Join(dirty, "app.yaml"), "db:\n  password: "+password+"\n")

	t.Run("clean", func(t *testing.T) {
		r := c.must(t, 0, "scan", clean)
		if !strings.Contains(r.stdout, "0 finding(s)") {
			t.Fatalf("want a summary with 0 findings:\n%s", r)
		}
	})
	t.Run("json", func(t *testing.T) {
		r := c.must(t, 1, "scan", "--format", "json", dirty)
		o := decodeObject(t, r.stdout, "findings", "files", "skipped")
		fs := array(t, o, "findings")
		if len(fs) != 2 {
			t.Fatalf("%d findings, want 2:\n%s", len(fs), r)
		}
		for _, f := range fs {
			requireKeys(t, "finding", f, "file", "line", "column", "rule", "severity", "kind", "preview", "fix")
		}
		if str(t, fs[1], "kind") != "secret-in-mcp-config" || str(t, fs[1], "rule") != "github-pat" || num(t, fs[1], "line") != 6 {
			t.Errorf("second finding = %v, want github-pat in the MCP config at line 6", fs[1])
		}
		if !strings.Contains(r.stderr, "reach --fail-on any") {
			t.Errorf("stderr does not say why it failed:\n%s", r)
		}
	})
	t.Run("fail-on high", func(t *testing.T) {
		c.must(t, 0, "scan", "--fail-on", "high", filepath.Join(dirty, "app.yaml"))
		c.must(t, 1, "scan", "--fail-on", "high", dirty)
	})
	t.Run("sarif", func(t *testing.T) {
		r := c.must(t, 1, "scan", "-o", "sarif", dirty)
		var log struct {
			Version string `json:"version"`
			Runs    []struct {
				Results []json.RawMessage `json:"results"`
			} `json:"runs"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &log); err != nil || log.Version != "2.1.0" || len(log.Runs) != 1 || len(log.Runs[0].Results) != 2 {
			t.Fatalf("not a SARIF 2.1.0 log with 2 results (%v):\n%s", err, r)
		}
	})
	t.Run("usage errors", func(t *testing.T) {
		c.must(t, 2, "scan")
		c.must(t, 2, "scan", "--format", "xml", dirty)
		c.must(t, 2, "scan", "--fail-on", "medium", dirty)
		r := c.must(t, 2, "scan", c.path("missing"))
		if !strings.Contains(r.stderr, "missing") {
			t.Errorf("the error does not name the path:\n%s", r)
		}
		c.must(t, 2, "scan", "--baseline", c.path("missing.json"), dirty)
		c.must(t, 2, "scan", "--diff", "--fix")
	})
	t.Run("baseline", func(t *testing.T) {
		r := c.must(t, 1, "scan", "--format", "json", "--out", c.path("baseline.json"), dirty)
		if r.stdout != "" {
			t.Errorf("--out still printed to stdout:\n%s", r)
		}
		c.must(t, 0, "scan", "--baseline", c.path("baseline.json"), dirty)
		writeFile(t, filepath.Join(dirty, "more.env"), "SLACK_BOT_TOKEN=xo"+"xb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx\n")
		r = c.must(t, 1, "scan", "--format", "json", "--baseline", c.path("baseline.json"), dirty)
		if fs := array(t, decodeObject(t, r.stdout, "findings", "files", "skipped"), "findings"); len(fs) != 1 || str(t, fs[0], "rule") != "slack-bot-token" {
			t.Fatalf("with the baseline, want only the new finding:\n%s", r)
		}
	})
	t.Run("diff", func(t *testing.T) {
		diff := "diff --git a/new.env b/new.env\nnew file mode 100644\n--- /dev/null\n+++ b/new.env\n@@ -0,0 +1,2 @@\n+LOG_LEVEL=debug\n+DB_PASSWORD=" + password + "\n"
		r := runStdin(t, c, diff, "scan", "--diff", "--format", "json")
		if r.code != 1 {
			t.Fatalf("want exit 1 for an added secret:\n%s", r)
		}
		fs := array(t, decodeObject(t, r.stdout, "findings", "files", "skipped"), "findings")
		if len(fs) != 1 || num(t, fs[0], "line") != 2 || str(t, fs[0], "file") != "new.env" {
			t.Fatalf("want one finding at new.env:2:\n%s", r)
		}
		removed := "--- a/old.env\n+++ b/old.env\n@@ -1,2 +1,1 @@\n LOG_LEVEL=debug\n-DB_PASSWORD=" + password + "\n"
		if r := runStdin(t, c, removed, "scan", "--diff"); r.code != 0 {
			t.Fatalf("a removed secret is not an added one:\n%s", r)
		}
		if r := runStdin(t, c, "@@ nonsense\n+x\n", "scan", "--diff"); r.code != 2 && r.code != 1 {
			t.Fatalf("a broken diff: want an error:\n%s", r)
		}
	})
	t.Run("import", func(t *testing.T) {
		r := c.must(t, 0, "import", filepath.Join(dirty, "claude_desktop_config.json"))
		if !strings.Contains(r.stdout, "consumer: \"github\"") || !strings.Contains(r.stdout, "rotator exec --env GITHUB_PERSONAL_ACCESS_TOKEN=github-github-personal-access-token") {
			t.Fatalf("import output lacks the credential:\n%s", r)
		}
		writeFile(t, c.path("imported", "rotator.yaml"), r.stdout)
		for _, rb := range []string{"exec.md", "generated.md"} {
			writeFile(t, c.path("runbooks", rb), readFile(t, filepath.Join(repoRoot, "runbooks", rb)))
		}
		c.must(t, 0, "apply", "-f", c.path("imported", "rotator.yaml"), "--dry-run")
		c.must(t, 2, "import", filepath.Join(dirty, "app.yaml"))
		c.must(t, 2, "import")
	})
	t.Run("fix", func(t *testing.T) {
		fixDir := c.path("fix")
		cfg := filepath.Join(fixDir, "claude_desktop_config.json")
		writeFile(t, cfg, readFile(t, filepath.Join(dirty, "claude_desktop_config.json")))
		r := c.must(t, 0, "scan", "--fix", fixDir)
		if !strings.Contains(r.stdout, "rotator credential github-github-personal-access-token") || !strings.Contains(r.stdout, "still to do") {
			t.Fatalf("--fix output lacks the change or the steps left:\n%s", r)
		}
		c.must(t, 0, "scan", cfg)
		if !strings.Contains(readFile(t, cfg+".rotator-backup"), token) {
			t.Fatal("the backup does not hold the original")
		}
	})
	for _, p := range c.printed {
		if strings.Contains(p, token) || strings.Contains(p, password) {
			t.Fatalf("a value was printed:\n%s", p)
		}
	}
}

// TestPreCommitHookExample runs examples/ci/pre-commit in a git repository:
// a commit that adds a secret is refused, one that adds a reference is not.
func TestPreCommitHookExample(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("git"); err != nil {
		t.Fatalf("git is needed for this test: %v", err)
	}
	c := newCLI(t, "sqlite")
	c.env = append(c.env, "PATH="+filepath.Dir(rotatorBin)+":"+os.Getenv("PATH"),
		"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com")
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir, cmd.Env = c.dir, c.env
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	hook := func() result {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, "sh", filepath.Join(repoRoot, "examples", "ci", "pre-commit"))
		cmd.Dir, cmd.Env = c.dir, c.env
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		r := result{stdout: stdout.String(), stderr: stderr.String()}
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			r.code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return r
	}
	git("init", "-q")
	writeFile(t, c.path(".env"), "GITHUB_TOKEN=${env:GITHUB_TOKEN}\n")
	git("add", ".env")
	if r := hook(); r.code != 0 {
		t.Fatalf("a reference was refused:\n%s", r)
	}
	git("commit", "-q", "-m", "references")
	writeFile(t, c.path(".env"), "GITHUB_TOKEN=${env:GITHUB_TOKEN}\nSTRIPE_KEY=sk"+"_live_51Hx8Kq2eZvKYlo2C9a8Xv2Lm4Np6Rt9Ws3Yu5Ka\n")
	git("add", ".env")
	r := hook()
	if r.code != 1 || !strings.Contains(r.stdout, ".env:2:") || !strings.Contains(r.stderr, "the commit adds secrets") {
		t.Fatalf("a secret was not refused:\n%s", r)
	}
	if strings.Contains(r.stdout+r.stderr, "51Hx8Kq2eZvKYlo2C9a8") {
		t.Fatal("the hook printed the secret")
	}
}
