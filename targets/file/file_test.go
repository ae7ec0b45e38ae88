package file

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/targets"
)

func promote(t *testing.T, tg *Target, cred, key, value string) error {
	t.Helper()
	return tg.Promote(context.Background(), targets.PromoteRequest{Common: targets.Common{
		CredentialID: cred, VersionID: "v1", IdempotencyKey: "run1/promote", Key: key, Value: secret.NewString(value),
	}})
}

func TestPromote(t *testing.T) {
	t.Parallel()

	t.Run("dotenv keeps other keys and is 0600", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "sub", "mcp.env")
		tg := New(Config{Path: path, Format: FormatDotenv, Mode: 0o600})
		// A file has no pending slot: Stage only checks the directory can be
		// written, and says it staged nothing.
		if err := tg.Stage(context.Background(), targets.StageRequest{}); !errors.Is(err, targets.ErrSkipped) {
			t.Fatalf("Stage: err = %v, want targets.ErrSkipped", err)
		}
		if err := promote(t, tg, "github-mcp", "GITHUB_TOKEN", "first-value-1234"); err != nil {
			t.Fatal(err)
		}
		if err := promote(t, tg, "notes", "", "it's a \"quoted\"\nvalue"); err != nil {
			t.Fatal(err)
		}
		if err := promote(t, tg, "github-mcp", "GITHUB_TOKEN", "second-value-5678"); err != nil {
			t.Fatal(err)
		}
		entries, err := tg.read(path)
		if err != nil {
			t.Fatal(err)
		}
		if entries["GITHUB_TOKEN"] != "second-value-5678" || entries["NOTES"] != "it's a \"quoted\"\nvalue" || len(entries) != 2 {
			t.Fatalf("entries = %q", entries)
		}
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Fatalf("mode = %v, want 0600", st.Mode().Perm())
		}
	})

	t.Run("json", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "creds.json")
		tg := New(Config{Path: path, Format: FormatJSON, Mode: 0o600})
		if err := promote(t, tg, "a", "A_KEY", "value-a-123456"); err != nil {
			t.Fatal(err)
		}
		if err := promote(t, tg, "b", "B_KEY", "value-b-123456"); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(path)
		var m map[string]string
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		if m["A_KEY"] != "value-a-123456" || m["B_KEY"] != "value-b-123456" {
			t.Fatalf("got %v", m)
		}
	})

	t.Run("raw", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "token")
		tg := New(Config{Path: path, Format: FormatRaw, Mode: 0o600})
		if err := promote(t, tg, "a", "", "raw-value-123456"); err != nil {
			t.Fatal(err)
		}
		if data, _ := os.ReadFile(path); string(data) != "raw-value-123456" {
			t.Fatalf("got %q", data)
		}
	})

	t.Run("concurrent writers of one file lose nothing", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "mcp.env")
		var wg sync.WaitGroup
		for i := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tg := New(Config{Path: path, Format: FormatDotenv, Mode: 0o600})
				key := "K" + strings.Repeat("X", i)
				if err := promote(t, tg, "c", key, "value-"+key); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		entries, err := New(Config{Path: path, Format: FormatDotenv}).read(path)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != 20 {
			t.Fatalf("got %d entries, want 20", len(entries))
		}
	})

	t.Run("corrupt file errors without echoing content", func(t *testing.T) {
		t.Parallel()
		const canary = "canary-secret-value-987654"
		path := filepath.Join(t.TempDir(), "bad.json")
		if err := os.WriteFile(path, []byte(`{"X": "`+canary), 0o600); err != nil {
			t.Fatal(err)
		}
		err := promote(t, New(Config{Path: path, Format: FormatJSON}), "a", "A", "new-value-123456")
		if err == nil || strings.Contains(err.Error(), canary) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		in     settings.Map
		fields []string
	}{
		"ok":            {settings.Map{"path": "./run/mcp.env", "format": "dotenv"}, nil},
		"missing path":  {settings.Map{"format": "json"}, []string{"path"}},
		"bad format":    {settings.Map{"path": "x", "format": "yaml"}, []string{"format"}},
		"bad mode":      {settings.Map{"path": "x", "mode": "9z"}, []string{"mode"}},
		"world mode":    {settings.Map{"path": "x", "mode": "0666"}, []string{"mode"}},
		"unknown field": {settings.Map{"path": "x", "colour": "red"}, []string{"colour"}},
	}
	for name, tc := range cases {
		errs := Validate(tc.in)
		var got []string
		for _, e := range errs {
			got = append(got, e.Field)
		}
		if strings.Join(got, ",") != strings.Join(tc.fields, ",") {
			t.Errorf("%s: error fields = %v, want %v (%v)", name, got, tc.fields, errs)
		}
	}
	if ValidateKey("GITHUB_TOKEN") != nil || ValidateKey("bad key") == nil {
		t.Error("ValidateKey")
	}
}

// A writer that holds the lock forever must not block Promote past its
// context (the engine's step timeout).
func TestPromoteHonoursContextWhileLocked(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "mcp.env")
	unlock, err := lockFile(context.Background(), path+".lock")
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	err = New(Config{Path: path, Format: FormatDotenv, Mode: 0o600}).Promote(ctx, targets.PromoteRequest{Common: targets.Common{
		CredentialID: "c", Key: "K", Value: secret.NewString("value-123456789"),
	}})
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Promote on a locked file: err = %v, want a deadline error", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Promote gave up after %s, want about 200ms", d)
	}
}
