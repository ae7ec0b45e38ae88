package file

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/targets"
)

func withdraw(t *testing.T, tg *Target, cred, key string, others ...targets.Binding) (targets.WithdrawResponse, error) {
	t.Helper()
	return tg.Withdraw(context.Background(), targets.WithdrawRequest{
		Common: targets.Common{CredentialID: cred, VersionID: "v1", IdempotencyKey: "apply/withdraw", Key: key},
		Others: others,
	})
}

func TestWithdraw(t *testing.T) {
	t.Parallel()

	t.Run("dotenv removes the key and keeps the others", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "mcp.env")
		tg := New(Config{Path: path, Format: FormatDotenv, Mode: 0o600})
		for _, kv := range [][3]string{{"gone", "GONE_TOKEN", "canary-withdrawn-value-123"}, {"kept", "", "kept-value-4567"}} {
			if err := promote(t, tg, kv[0], kv[1], kv[2]); err != nil {
				t.Fatal(err)
			}
		}
		resp, err := withdraw(t, tg, "gone", "GONE_TOKEN", targets.Binding{CredentialID: "kept"})
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(resp.Detail, "removed GONE_TOKEN from") {
			t.Errorf("detail %q", resp.Detail)
		}
		data, _ := os.ReadFile(path)
		if strings.Contains(string(data), "canary-withdrawn-value") || strings.Contains(string(data), "GONE_TOKEN") {
			t.Fatalf("the withdrawn value is still in the file:\n%s", data)
		}
		if !strings.Contains(string(data), "KEPT=kept-value-4567") {
			t.Fatalf("another credential's value was lost:\n%s", data)
		}
		if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
			t.Errorf("mode %v after withdraw, want 0600", st.Mode().Perm())
		}
		// Again: already gone is success.
		resp, err = withdraw(t, tg, "gone", "GONE_TOKEN")
		if err != nil || !strings.Contains(resp.Detail, "already absent") {
			t.Fatalf("second withdraw: %q, %v", resp.Detail, err)
		}
	})

	t.Run("json removes the key", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "creds.json")
		tg := New(Config{Path: path, Format: FormatJSON, Mode: 0o600})
		_ = promote(t, tg, "a", "A_KEY", "value-a-123456")
		_ = promote(t, tg, "b", "B_KEY", "value-b-123456")
		if _, err := withdraw(t, tg, "a", "A_KEY"); err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(path)
		var m map[string]string
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		if _, ok := m["A_KEY"]; ok || m["B_KEY"] != "value-b-123456" || len(m) != 1 {
			t.Fatalf("got %v", m)
		}
	})

	t.Run("raw removes the file", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "token")
		tg := New(Config{Path: path, Format: FormatRaw, Mode: 0o600})
		_ = promote(t, tg, "a", "", "raw-value-123456")
		if _, err := withdraw(t, tg, "a", ""); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("raw file still exists: %v", err)
		}
		if resp, err := withdraw(t, tg, "a", ""); err != nil || !strings.Contains(resp.Detail, "already absent") {
			t.Fatalf("second withdraw: %q, %v", resp.Detail, err)
		}
	})

	t.Run("a key another credential publishes is left in place", func(t *testing.T) {
		t.Parallel()
		path := filepath.Join(t.TempDir(), "mcp.env")
		tg := New(Config{Path: path, Format: FormatDotenv, Mode: 0o600})
		_ = promote(t, tg, "a", "SHARED", "shared-value-123456")
		_, err := withdraw(t, tg, "a", "SHARED", targets.Binding{CredentialID: "b", Key: "SHARED"})
		if !errors.Is(err, targets.ErrSkipped) || !strings.Contains(err.Error(), "credential b also publishes key SHARED") {
			t.Fatalf("err = %v, want targets.ErrSkipped naming credential b", err)
		}
		if data, _ := os.ReadFile(path); !strings.Contains(string(data), "SHARED=shared-value-123456") {
			t.Fatalf("the shared key was removed:\n%s", data)
		}
	})

	t.Run("missing directory is already withdrawn", func(t *testing.T) {
		t.Parallel()
		tg := New(Config{Path: filepath.Join(t.TempDir(), "never", "mcp.env"), Format: FormatDotenv, Mode: 0o600})
		if resp, err := withdraw(t, tg, "a", "A"); err != nil || !strings.Contains(resp.Detail, "already absent") {
			t.Fatalf("withdraw: %q, %v", resp.Detail, err)
		}
	})

	t.Run("unreadable file fails without echoing content", func(t *testing.T) {
		t.Parallel()
		const canary = "canary-secret-value-987654"
		path := filepath.Join(t.TempDir(), "bad.json")
		if err := os.WriteFile(path, []byte(`{"X": "`+canary), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := withdraw(t, New(Config{Path: path, Format: FormatJSON}), "a", "X")
		if err == nil || strings.Contains(err.Error(), canary) {
			t.Fatalf("err = %v", err)
		}
	})
}
