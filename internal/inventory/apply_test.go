package inventory_test

import (
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/inventory"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/postgres"
	"github.com/rotatorhq/rotator/internal/store/sqlite"
	"github.com/rotatorhq/rotator/internal/testpg"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(testpg.M(m)) }

func forEachStore(t *testing.T, fn func(t *testing.T, st store.Store)) {
	t.Helper()
	open := map[string]func(t *testing.T) (store.Store, error){
		"postgres": func(t *testing.T) (store.Store, error) { return postgres.Open(t.Context(), testpg.New(t)) },
		"sqlite": func(t *testing.T) (store.Store, error) {
			return sqlite.Open(t.Context(), "sqlite://"+filepath.Join(t.TempDir(), "rotator.db"))
		},
	}
	for _, name := range []string{"postgres", "sqlite"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			st, err := open[name](t)
			if err != nil {
				t.Fatalf("open %s: %v", name, err)
			}
			t.Cleanup(func() { _ = st.Close() })
			if err := st.Migrate(t.Context()); err != nil {
				t.Fatalf("migrate: %v", err)
			}
			fn(t, st)
		})
	}
}

const base = `
providers:
  gen: {type: generated, length: 32}
targets:
  env: {type: file, path: ./run/mcp.env}
credentials:
  - id: a
    consumer: mcp-server-a
    provider: gen
    scope: [read]
    labels: {team: x}
    max_age: 1h
    grace: 1m
    runbook: runbooks/generated.md#rotation
    targets: [{target: env, key: A_KEY}]
  - id: b
    consumer: mcp-server-b
    provider: gen
    max_age: 2h
    runbook: runbooks/generated.md#rotation
`

func parse(t *testing.T, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("test.yaml", []byte(yaml), config.Options{BaseDir: ".", CheckRunbooks: true})
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return cfg
}

func actions(d inventory.Diff) []string {
	var out []string
	for _, c := range d.Changes {
		s := c.Kind + " " + c.Name + " " + c.Action
		if len(c.Fields) > 0 {
			s += " (" + strings.Join(c.Fields, ",") + ")"
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func ids(t *testing.T, st store.Store) []string {
	t.Helper()
	cs, err := st.ListCredentials(t.Context(), store.CredentialFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, c := range cs {
		out = append(out, c.ID)
	}
	return out
}

func TestApply(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	opts := inventory.Options{Actor: "tester", Now: func() time.Time { return now }}

	forEachStore(t, func(t *testing.T, st store.Store) {
		ctx := t.Context()

		dry, err := inventory.Apply(ctx, st, parse(t, base), inventory.Options{DryRun: true, Now: opts.Now})
		if err != nil {
			t.Fatal(err)
		}
		if !dry.DryRun || dry.Count(inventory.Created) != 4 {
			t.Fatalf("dry run diff = %v", actions(dry))
		}
		if got := ids(t, st); len(got) != 0 {
			t.Fatalf("dry run wrote credentials %v", got)
		}

		first, err := inventory.Apply(ctx, st, parse(t, base), opts)
		if err != nil {
			t.Fatal(err)
		}
		want := []string{"credential a created", "credential b created", "provider gen created", "target env created"}
		if got := actions(first); !slices.Equal(got, want) {
			t.Fatalf("first apply = %v, want %v", got, want)
		}
		c, err := st.GetCredential(ctx, "a")
		if err != nil {
			t.Fatal(err)
		}
		if c.State.Status != store.StatusNew || !c.State.NextRotationAt.Equal(now) {
			t.Fatalf("new credential state = %+v, want status new, due now", c.State)
		}
		// The runbook is found in the repository's runbooks/ (a parent
		// directory) and remembered by absolute path for runs.
		if !filepath.IsAbs(c.RunbookFile) || filepath.Base(c.RunbookFile) != "generated.md" {
			t.Fatalf("runbook file = %q, want the absolute path of runbooks/generated.md", c.RunbookFile)
		}

		second, err := inventory.Apply(ctx, st, parse(t, base), opts)
		if err != nil {
			t.Fatal(err)
		}
		if second.Changed() || second.Count(inventory.Unchanged) != 4 {
			t.Fatalf("second apply = %v, want all unchanged", actions(second))
		}

		changed := strings.Replace(base, "max_age: 2h", "max_age: 3h\n    owner: data-team", 1)
		changed = strings.Replace(changed, "length: 32", "length: 48", 1)
		third, err := inventory.Apply(ctx, st, parse(t, changed), opts)
		if err != nil {
			t.Fatal(err)
		}
		want = []string{"credential a unchanged", "credential b updated (owner,max_age)", "provider gen updated (length)", "target env unchanged"}
		if got := actions(third); !slices.Equal(got, want) {
			t.Fatalf("third apply = %v, want %v", got, want)
		}

		onlyA := base[:strings.Index(base, "  - id: b")]
		kept, err := inventory.Apply(ctx, st, parse(t, onlyA), opts)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(actions(kept), "credential b not_in_config") || !slices.Equal(ids(t, st), []string{"a", "b"}) {
			t.Fatalf("apply without prune = %v, ids %v", actions(kept), ids(t, st))
		}
		pruned, err := inventory.Apply(ctx, st, parse(t, onlyA), inventory.Options{Prune: true, Now: opts.Now})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(actions(pruned), "credential b removed") || !slices.Equal(ids(t, st), []string{"a"}) {
			t.Fatalf("prune = %v, ids %v", actions(pruned), ids(t, st))
		}

		var events []store.AuditEvent
		err = st.ScanAuditEvents(ctx, store.AuditFilter{}, func(e store.AuditEvent) error {
			events = append(events, e)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		var acts []string
		for _, e := range events {
			acts = append(acts, e.Action)
		}
		for _, want := range []string{"credential.created", "credential.updated", "credential.removed", "provider.updated", "config.applied"} {
			if !slices.Contains(acts, want) {
				t.Errorf("audit events %v lack %s", acts, want)
			}
		}
	})
}

// A failing apply changes nothing: the store error on the second credential
// (its provider row is missing because we bypass validation) rolls back the
// first.
func TestApplyIsAtomic(t *testing.T) {
	t.Parallel()
	forEachStore(t, func(t *testing.T, st store.Store) {
		ctx := t.Context()
		cfg := parse(t, base)
		cfg.Credentials[1].Provider = "missing"
		if _, err := inventory.Apply(ctx, st, cfg, inventory.Options{}); err == nil {
			t.Fatal("apply with a credential on a missing provider succeeded")
		}
		if got := ids(t, st); len(got) != 0 {
			t.Fatalf("failed apply left credentials %v", got)
		}
		ps, err := st.ListProviders(ctx)
		if err != nil || len(ps) != 0 {
			t.Fatalf("failed apply left providers %v (%v)", ps, err)
		}
	})
}
