package deliverytest

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/inventory"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/postgres"
	"github.com/rotatorhq/rotator/internal/store/sqlite"
	"github.com/rotatorhq/rotator/internal/testpg"
	"github.com/rotatorhq/rotator/rotation"
)

// Credentials the fixture declares, all on the generated provider (values
// start with ValuePrefix): A and B are rotated once by NewFixture, NoValue
// never is.
const (
	CredA       = "dt-a"
	CredB       = "dt-b"
	CredNoValue = "dt-empty"
	ValuePrefix = "dtcanary_"
)

const fixtureConfig = `
providers:
  gen:
    type: generated
    length: 40
    prefix: "` + ValuePrefix + `"
credentials:
`

// Fixture is a migrated store holding the fixture's credentials, with an
// engine that rotates them (through rotation.Local, as the CLI does without
// a service) and the keyring that opens their values.
type Fixture struct {
	Store   store.Store
	Keyring secret.Keyring
	Engine  *rotation.Engine
}

// Dialects are the store dialects OpenStore opens.
var Dialects = []string{"postgres", "sqlite"}

// ForEachDialect runs fn once per dialect, in parallel subtests named after
// it; fn opens its stores with OpenStore(t, dialect).
func ForEachDialect(t *testing.T, fn func(t *testing.T, dialect string)) {
	t.Helper()
	for _, name := range Dialects {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			fn(t, name)
		})
	}
}

// OpenStore opens and migrates a fresh store of the dialect ("postgres": a
// schema of its own through internal/testpg, whose TestMain must wrap
// testpg.M; "sqlite": a file in a temporary directory), closed at the
// test's end.
func OpenStore(t testing.TB, dialect string) store.Store {
	t.Helper()
	var st store.Store
	var err error
	switch dialect {
	case "postgres":
		st, err = postgres.Open(context.Background(), testpg.New(t)+"&pool_max_conns=6")
	case "sqlite":
		st, err = sqlite.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "rotator.db"))
	default:
		t.Fatalf("unknown dialect %q", dialect)
	}
	if err != nil {
		t.Fatalf("open %s: %v", dialect, err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	if err := rotation.Migrate(context.Background(), st); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return st
}

// NewFixture applies the fixture's credentials (plus extra, more credential
// entries in the config's YAML form) to st, and rotates CredA and CredB
// once.
func NewFixture(t testing.TB, st store.Store, extra ...string) *Fixture {
	t.Helper()
	ctx := context.Background()
	var b strings.Builder
	b.WriteString(fixtureConfig)
	for _, id := range []string{CredA, CredB, CredNoValue} {
		fmt.Fprintf(&b, "  - id: %s\n    consumer: mcp-server-%s\n    provider: gen\n    labels: {team: dt, name: %s}\n    max_age: 720h\n    grace: 0s\n    runbook: runbooks/generated.md#rotation\n", id, id, id)
	}
	for _, e := range extra {
		b.WriteString(e)
	}
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(filepath.Join(t.TempDir(), "rotator.yaml"), []byte(b.String()), config.Options{BaseDir: root})
	if err != nil {
		t.Fatalf("config:\n%s\n%v", b.String(), err)
	}
	if _, err := inventory.Apply(ctx, st, cfg, inventory.Options{Actor: "deliverytest"}); err != nil {
		t.Fatalf("apply: %v", err)
	}
	kr, err := secret.NewKeyring(secret.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	f := &Fixture{Store: st, Keyring: kr, Engine: newEngine(t, st, kr)}
	f.Rotate(t, CredA)
	f.Rotate(t, CredB)
	return f
}

// newEngine returns an engine on st with the keyring kr.
func newEngine(t testing.TB, st store.Store, kr secret.Keyring) *rotation.Engine {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	e, err := rotation.New(rotation.Options{Store: st, Keyring: kr, Redactor: &secret.Redactor{}, RunbookDir: root, StepTimeout: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	// A Runner that is never started gives the engine its queue, as
	// 'rotator rotate' does without a service.
	if _, err := rotation.NewRunner(e, rotation.RunnerOptions{Workers: 1}); err != nil {
		t.Fatal(err)
	}
	return e
}

// Elsewhere returns the fixture as another process would see it: a second
// handle on the same database (its own connections, closed at the test's
// end), with an engine of its own and the same keyring. What it commits
// reaches f.Store's handle only through the database.
func (f *Fixture) Elsewhere(t testing.TB) *Fixture {
	t.Helper()
	var st store.Store
	var err error
	switch s := f.Store.(type) {
	case *postgres.Store:
		st, err = postgres.Open(context.Background(), s.Pool().Config().ConnString())
	case *sqlite.Store:
		st, err = sqlite.Open(context.Background(), "sqlite://"+s.Path())
	default:
		t.Fatalf("Elsewhere: a %T store", f.Store)
	}
	if err != nil {
		t.Fatalf("open a second handle: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close the second handle: %v", err)
		}
	})
	return &Fixture{Store: st, Keyring: f.Keyring, Engine: newEngine(t, st, f.Keyring)}
}

// Rotate rotates a credential to a new current version, through the
// previous version's retirement, and returns the new version's id.
func (f *Fixture) Rotate(t testing.TB, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	before := f.CurrentVersion(t, id)
	started, err := f.Engine.Rotate(ctx, rotation.Request{
		Selection: rotation.Selection{IDs: []string{id}}, Trigger: store.TriggerManual, Actor: "deliverytest", Reason: "test",
	})
	if err != nil || len(started) != 1 || started[0].Skipped {
		t.Fatalf("rotate %s: %+v, %v", id, started, err)
	}
	local := &rotation.Local{E: f.Engine, Concurrency: 1, WaitRetired: true, Deadline: time.Now().Add(time.Minute)}
	res := local.Drive(ctx, []string{started[0].RunID})
	if len(res) != 1 || !slices.Contains([]rotation.State{rotation.StateSucceeded, rotation.StateCutOver}, rotation.State(res[0].Run.State)) {
		t.Fatalf("rotate %s: run ended %+v", id, res)
	}
	after := f.CurrentVersion(t, id)
	if after == "" || after == before {
		t.Fatalf("rotate %s: current version %q, before %q", id, after, before)
	}
	return after
}

// CurrentVersion returns the id of a credential's current version ("" when
// it has none).
func (f *Fixture) CurrentVersion(t testing.TB, id string) string {
	t.Helper()
	c, err := f.Store.GetCredential(context.Background(), id)
	if err != nil {
		t.Fatalf("get credential %s: %v", id, err)
	}
	if c.Current == nil {
		return ""
	}
	return c.Current.ID
}

// Value opens a credential's current value, for canary checks.
func (f *Fixture) Value(t testing.TB, id string) string {
	t.Helper()
	c, err := f.Store.GetCredential(context.Background(), id)
	if err != nil || c.Current == nil {
		t.Fatalf("get credential %s: %v (current %v)", id, err, c.Current)
	}
	v, err := f.Keyring.Open(c.Current.CredentialID, c.Current.ID, c.Current.KeyID, c.Current.Sealed)
	if err != nil {
		t.Fatal(err)
	}
	return string(v.Reveal())
}
