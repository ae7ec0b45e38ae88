package providertest_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/faulty"
	"github.com/rotatorhq/rotator/providers/providertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// faultyResource is the faulty provider's resource: the set of values it
// holds valid. It stalls by making every call hang through the control file.
type faultyResource struct {
	p       *faulty.Provider
	control string
}

func (r faultyResource) Accepts(_ context.Context, v providers.VersionRef) (bool, error) {
	return r.p.Valid(v.Value), nil
}

func (r faultyResource) Stall(t *testing.T) func() {
	b, _ := json.Marshal(faulty.Control{Hang: []string{"mint", "activate", "verify", "revoke"}})
	if err := os.WriteFile(r.control, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return func() { _ = os.Remove(r.control) }
}

func faultyHarness(wrap func(providers.Provider, *slog.Logger) providers.Provider) providertest.Harness {
	return providertest.Harness{
		New: func(t *testing.T, logger *slog.Logger) providertest.Instance {
			control := filepath.Join(t.TempDir(), "control.json")
			p := faulty.New(faulty.Config{ControlFile: control})
			return providertest.Instance{
				Provider: wrap(p, logger),
				Resource: faultyResource{p: p, control: control},
				Secrets:  []secret.Value{secret.NewString("admin-password-canary")},
			}
		},
		Factory:  faulty.Factory(),
		Scope:    []string{"read"},
		Parallel: true,
	}
}

// TestExerciseFaulty runs the suite against the faulty provider, whose
// in-memory resource behaves as the contract asks.
func TestExerciseFaulty(t *testing.T) {
	providertest.Exercise(t, faultyHarness(func(p providers.Provider, _ *slog.Logger) providers.Provider { return p }))
}

// leaky logs part of every value it mints.
type leaky struct {
	providers.Provider
	log *slog.Logger
}

func (l leaky) Mint(ctx context.Context, req providers.MintRequest) (providers.MintResponse, error) {
	resp, err := l.Provider.Mint(ctx, req)
	if err == nil {
		l.log.Info("minted", slog.String("prefix", resp.Value.RevealString()[:20]))
	}
	return resp, err
}

const leakyEnv = "PROVIDERTEST_RUN_LEAKY"

// TestExerciseCatchesLeaks checks that the suite fails a provider that
// logs part of a value: it runs the suite against such a provider in a
// child process and expects that to fail, naming the leak.
func TestExerciseCatchesLeaks(t *testing.T) {
	if os.Getenv(leakyEnv) == "1" {
		providertest.Exercise(t, faultyHarness(func(p providers.Provider, log *slog.Logger) providers.Provider {
			return leaky{Provider: p, log: log}
		}))
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestExerciseCatchesLeaks$", "-test.count=1")
	cmd.Env = append(os.Environ(), leakyEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the suite passed a provider that logs minted values:\n%s", out)
	}
	if !strings.Contains(string(out), "appears in the provider's log output") {
		t.Fatalf("the suite failed, but not for the leak:\n%s", out)
	}
}
