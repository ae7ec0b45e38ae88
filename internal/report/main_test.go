package report_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/audit"
	"github.com/rotatorhq/rotator/internal/report"
	"github.com/rotatorhq/rotator/internal/runbook"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/postgres"
	"github.com/rotatorhq/rotator/internal/store/sqlite"
	"github.com/rotatorhq/rotator/internal/testpg"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(testpg.M(m)) }

// dialects opens a fresh, migrated store of each kind; exec runs raw SQL
// behind the store's back.
var dialects = map[string]func(t testing.TB) (store.Store, func(q string)){
	"postgres": func(t testing.TB) (store.Store, func(string)) {
		st, err := postgres.Open(context.Background(), testpg.New(t))
		if err != nil {
			t.Fatalf("open postgres: %v", err)
		}
		migrate(t, st)
		return st, func(q string) {
			t.Helper()
			if _, err := st.Handle().(*pgxpool.Pool).Exec(context.Background(), q); err != nil {
				t.Fatalf("raw SQL %q: %v", q, err)
			}
		}
	},
	"sqlite": func(t testing.TB) (store.Store, func(string)) {
		st, err := sqlite.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "rotator.db"))
		if err != nil {
			t.Fatalf("open sqlite: %v", err)
		}
		migrate(t, st)
		return st, func(q string) {
			t.Helper()
			if _, err := st.Handle().(*sql.DB).ExecContext(context.Background(), q); err != nil {
				t.Fatalf("raw SQL %q: %v", q, err)
			}
		}
	},
}

func migrate(t testing.TB, st store.Store) {
	t.Helper()
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	if err := st.Migrate(context.Background()); err != nil {
		t.Fatalf("migrate: %v", err)
	}
}

func eachDialect(t *testing.T, fn func(t *testing.T, st store.Store, exec func(string))) {
	t.Helper()
	for _, name := range []string{"postgres", "sqlite"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st, exec := dialects[name](t)
			fn(t, st, exec)
		})
	}
}

// now is the time seeded reports are made at.
var now = time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)

const runbookText = `---
id: generated
version: 2
owner: platform-team
reviewed: 2026-03-01
---

# Generated secrets

## Rotation

Steps.

## Emergency

Steps.
`

// seeded describes what seed wrote.
type seeded struct {
	dir           string // holds runbooks/generated.md
	currentDigest string
	tiedRuns      int
}

// seed writes an inventory that exercises every flag, outcome and section:
//
//	healthy-1    fresh, in policy, granted scope not reported; its run
//	             run-ok skipped revoke_previous       labels team=platform
//	old-2        120% of max age: overdue         labels team=platform
//	expiring-3   95% of max age: expiring
//	scoped-4     granted "admin" undeclared: over_scoped
//	failing-5    failing after 2 failed runs
//	attention-6  needs_attention
//	norunbook-7  its runbook does not exist       labels team=data
//
// and runs of the period: a success, a rollback failed at verify, an
// emergency (its runbook changed since), one in progress, a dozen created
// at the same microsecond (paging ties), and one before the period.
func seed(t testing.TB, st store.Store) seeded {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "runbooks"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "runbooks", "generated.md"), []byte(runbookText), 0o600); err != nil {
		t.Fatal(err)
	}
	s := seeded{dir: dir, currentDigest: runbook.Digest([]byte(runbookText)), tiedRuns: 12}
	day := 24 * time.Hour
	type cred struct {
		id       string
		maxAge   time.Duration
		issued   time.Duration // ago
		status   store.Status
		failures int
		granted  []string
		runbook  string
		labels   map[string]string
		next     time.Duration // from now
	}
	creds := []cred{
		{"healthy-1", 30 * day, day, store.StatusHealthy, 0, nil, "runbooks/generated.md#rotation", map[string]string{"team": "platform"}, 20 * day},
		{"old-2", 10 * day, 12 * day, store.StatusHealthy, 0, nil, "runbooks/generated.md#rotation", map[string]string{"team": "platform"}, -3 * day},
		{"expiring-3", 10 * day, 9*day + 12*time.Hour, store.StatusHealthy, 0, nil, "runbooks/generated.md#rotation", nil, time.Hour},
		{"scoped-4", 30 * day, day, store.StatusHealthy, 0, []string{"repo:read", "admin"}, "runbooks/generated.md#rotation", nil, 20 * day},
		{"failing-5", 30 * day, 2 * day, store.StatusFailing, 2, nil, "runbooks/generated.md#rotation", nil, time.Hour},
		{"attention-6", 30 * day, 2 * day, store.StatusNeedsAttention, 5, nil, "runbooks/generated.md#emergency", nil, 0},
		{"norunbook-7", 30 * day, day, store.StatusHealthy, 0, nil, "runbooks/missing.md#rotation", map[string]string{"team": "data"}, 20 * day},
	}
	err := st.InTx(ctx, func(tx store.Tx) error {
		if err := tx.UpsertProvider(ctx, store.Provider{Name: "gen", Type: "generated", CreatedAt: now, UpdatedAt: now}); err != nil {
			return err
		}
		for _, c := range creds {
			if err := tx.UpsertCredentialSpec(ctx, store.Credential{
				ID: c.id, Consumer: "mcp-server-" + c.id, Provider: "gen", Scope: []string{"repo:read"}, Owner: "platform-team",
				Labels: c.labels, Policy: store.Policy{MaxAge: c.maxAge}, Runbook: c.runbook, CreatedAt: now.Add(-60 * day), UpdatedAt: now,
			}); err != nil {
				return err
			}
			v := store.Version{
				ID: c.id + "-v1", CredentialID: c.id, Stage: store.StageCurrent, Sealed: []byte("sealed"), KeyID: "k",
				Fingerprint: "fp" + c.id, CreatedAt: now.Add(-c.issued), ActivatedAt: now.Add(-c.issued), GrantedScope: c.granted,
			}
			if c.id == "healthy-1" { // the resource did not report the granted scope
				v.Metadata = map[string]string{store.MetaGrantedScope: store.ScopeNotReported}
			}
			if err := tx.InsertVersion(ctx, v); err != nil {
				return err
			}
			next := time.Time{}
			if c.next != 0 {
				next = now.Add(c.next)
			}
			if err := tx.UpdateCredentialState(ctx, c.id, store.CredentialState{
				Status: c.status, CurrentVersionID: v.ID, LastRotatedAt: v.ActivatedAt, NextRotationAt: next, FailureCount: c.failures,
			}); err != nil {
				return err
			}
		}
		rb := store.RunbookRef{Path: "runbooks/generated.md", Anchor: "rotation", Digest: s.currentDigest}
		run := func(id, cred string, trig store.Trigger, state, reason, errText string, created time.Time, runbook store.RunbookRef) store.Run {
			r := store.Run{
				ID: id, CredentialID: cred, Trigger: trig, Actor: "alice", Reason: reason, State: state, Attempt: 1,
				Runbook: runbook, Error: errText, CreatedAt: created, StartedAt: created.Add(time.Second), UpdatedAt: created.Add(time.Minute),
			}
			switch state {
			case "succeeded", "rolled_back", "failed":
				r.FinishedAt = created.Add(90 * time.Second)
			default:
				r.Active = true
			}
			return r
		}
		runs := []store.Run{
			run("run-ok", "healthy-1", store.TriggerSchedule, "succeeded", "", "", now.Add(-day), rb),
			run("run-rb", "failing-5", store.TriggerSchedule, "rolled_back", "", "verify failed: scope mismatch", now.Add(-2*day), rb),
			run("run-em", "old-2", store.TriggerEmergency, "succeeded", "key leaked in INC-1234", "", now.Add(-3*day),
				store.RunbookRef{Path: "runbooks/generated.md", Anchor: "emergency", Digest: "sha256:0000"}),
			run("run-wip", "expiring-3", store.TriggerManual, "cut_over", "", "", now.Add(-time.Hour), rb),
			run("run-before", "healthy-1", store.TriggerSchedule, "succeeded", "", "", now.Add(-40*day), rb),
		}
		tied := now.Add(-5 * day)
		for i := range s.tiedRuns {
			runs = append(runs, run(fmt.Sprintf("run-tied-%02d", i), "scoped-4", store.TriggerSchedule, "succeeded", "", "", tied, rb))
		}
		for _, r := range runs {
			if err := tx.InsertRun(ctx, r); err != nil {
				return err
			}
		}
		for i, name := range []string{"mint", "activate", "verify"} {
			state := "ok"
			if name == "verify" {
				state = "failed"
			}
			if err := tx.InsertStep(ctx, store.Step{RunID: "run-rb", Seq: i, Name: name, State: state, StartedAt: now.Add(-2 * day), FinishedAt: now.Add(-2 * day)}); err != nil {
				return err
			}
		}
		data, _ := json.Marshal(map[string]any{"runbook": "runbooks/generated.md#rotation", "detail": "granted scope exceeds declared"})
		return tx.InsertAuditEvents(ctx,
			store.AuditEvent{OccurredAt: now.Add(-day), Actor: "alice", Action: "run.planned", CredentialID: "healthy-1", RunID: "run-ok", Data: json.RawMessage(`{"trigger":"schedule"}`)},
			store.AuditEvent{OccurredAt: now.Add(-day), Actor: "alice", Action: "run.revoke_previous", CredentialID: "healthy-1", RunID: "run-ok",
				Data: json.RawMessage(`{"evidence":{"reason":"provider gen cannot revoke values"},"outcome":"skipped","step":"revoke_previous"}`)},
			store.AuditEvent{OccurredAt: now.Add(-day), Actor: "scheduler", Action: "policy.over_scoped", CredentialID: "scoped-4", Data: data},
			store.AuditEvent{OccurredAt: now.Add(-50 * day), Actor: "scheduler", Action: "policy.over_scoped", CredentialID: "scoped-4", Data: data},
			store.AuditEvent{OccurredAt: now.Add(-day), Actor: "alice", Action: "policy.max_age_exceeded", CredentialID: "norunbook-7", Data: json.RawMessage(`{}`)},
		)
	})
	if err != nil {
		t.Fatalf("seed: %v", err)
	}
	if _, err := audit.NewSealer(st, audit.SealerOptions{}).Seal(ctx, 0); err != nil {
		t.Fatalf("seal: %v", err)
	}
	return s
}

func write(t testing.TB, st store.Store, opts report.Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := report.Write(context.Background(), st, &buf, opts); err != nil {
		t.Fatalf("report (%s): %v", opts.Format, err)
	}
	return buf.Bytes()
}
