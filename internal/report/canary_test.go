package report_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/audit"
	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/inventory"
	"github.com/rotatorhq/rotator/internal/report"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

const canaryConfig = `
providers:
  gen:
    type: generated
    length: 40
    prefix: "CANARY_"
targets:
  out:
    type: file
    path: "{{dir}}/out.env"
    format: dotenv
credentials:
  - id: canary
    consumer: mcp-server-canary
    provider: gen
    scope: [canary:read]
    max_age: 1h
    grace: 0s
    runbook: runbooks/generated.md#rotation
    targets:
      - {target: out, key: CANARY_TOKEN}
`

// TestCanaryNeverInReport rotates a credential through the engine twice
// (a manual rotation, then an emergency one) and checks that neither value
// it minted appears in any report format, nor in the audit records.
func TestCanaryNeverInReport(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, st store.Store, _ func(string)) {
		ctx := context.Background()
		dir := t.TempDir()
		root, err := filepath.Abs("../..")
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := config.Parse(filepath.Join(dir, "rotator.yaml"), []byte(strings.ReplaceAll(canaryConfig, "{{dir}}", dir)), config.Options{BaseDir: root})
		if err != nil {
			t.Fatalf("config: %v", err)
		}
		if _, err := inventory.Apply(ctx, st, cfg, inventory.Options{Actor: "test"}); err != nil {
			t.Fatalf("apply: %v", err)
		}
		kr, err := secret.NewKeyring(secret.GenerateKey())
		if err != nil {
			t.Fatal(err)
		}
		e, err := rotation.New(rotation.Options{Store: st, Keyring: kr, RunbookDir: root})
		if err != nil {
			t.Fatal(err)
		}

		var canaries []string
		rotate := func(trigger store.Trigger, reason string, opts string) {
			t.Helper()
			created := time.Now().UTC().Truncate(time.Microsecond)
			c, err := st.GetCredential(ctx, "canary")
			if err != nil {
				t.Fatal(err)
			}
			r := store.Run{
				ID: rotation.NewID(created), CredentialID: "canary", Trigger: trigger, Actor: "canary-test", Reason: reason,
				State: string(rotation.StatePlanned), Active: true, Attempt: 1, Options: json.RawMessage(opts),
				Runbook: store.RunbookRef{Path: "runbooks/generated.md", Anchor: "rotation"}, CreatedAt: created, UpdatedAt: created,
			}
			if c.Current != nil {
				r.OldVersionID = c.Current.ID
			}
			if err := st.InTx(ctx, func(tx store.Tx) error { return tx.InsertRun(ctx, r) }); err != nil {
				t.Fatalf("insert run: %v", err)
			}
			if _, _, err := e.Execute(ctx, r.ID); err != nil {
				t.Fatalf("execute: %v", err)
			}
			done, err := st.GetRun(ctx, r.ID)
			if err != nil || done.State != string(rotation.StateSucceeded) {
				t.Fatalf("run %s: %s %q, %v", r.ID, done.State, done.Error, err)
			}
			c, err = st.GetCredential(ctx, "canary")
			if err != nil || c.Current == nil {
				t.Fatalf("credential after rotation: %+v, %v", c, err)
			}
			v, err := kr.Open(c.ID, c.Current.ID, c.Current.KeyID, c.Current.Sealed)
			if err != nil {
				t.Fatal(err)
			}
			value := string(v.Reveal())
			if !strings.HasPrefix(value, "CANARY_") || len(value) != len("CANARY_")+40 {
				t.Fatalf("minted value has an unexpected form (length %d)", len(value))
			}
			canaries = append(canaries, value, strings.TrimPrefix(value, "CANARY_"))
		}
		rotate(store.TriggerManual, "scheduled canary", `{}`)
		rotate(store.TriggerEmergency, "canary leaked", `{"emergency":true}`)
		if out, err := os.ReadFile(filepath.Join(dir, "out.env")); err != nil || !strings.Contains(string(out), canaries[2]) {
			t.Fatalf("the file target does not hold the current value (%v): the canary check would prove nothing", err)
		}
		if _, err := audit.NewSealer(st, audit.SealerOptions{}).Seal(ctx, 0); err != nil {
			t.Fatal(err)
		}

		var outputs []string
		for _, f := range report.Formats {
			out := write(t, st, report.Options{Format: f, Now: time.Now().Add(time.Minute), RunbookDir: root})
			if !strings.Contains(string(out), "canary leaked") {
				t.Fatalf("%s report does not show the emergency run: the canary check would prove nothing", f)
			}
			outputs = append(outputs, string(out))
		}
		err = st.ScanAuditEvents(ctx, store.AuditFilter{}, func(ev store.AuditEvent) error {
			b, err := json.Marshal(audit.NewRecord(ev))
			outputs = append(outputs, string(b))
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		for i, out := range outputs {
			for _, c := range canaries {
				if strings.Contains(out, c) {
					t.Errorf("output %d contains a minted secret value", i)
				}
			}
		}
	})
}
