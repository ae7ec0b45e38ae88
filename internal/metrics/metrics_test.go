package metrics_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/inventory"
	"github.com/rotatorhq/rotator/internal/metrics"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/sqlite"
	"github.com/rotatorhq/rotator/providers/faulty"
	"github.com/rotatorhq/rotator/rotation"
)

const testConfig = `
providers:
  gen:
    type: generated
    length: 32
  flt:
    type: faulty
    control_file: "{{dir}}/control.json"
targets:
  out:
    type: file
    path: "{{dir}}/out.env"
credentials:
  - id: good
    consumer: mcp-good
    provider: gen
    max_age: 1h
    runbook: runbooks/generated.md#rotation
    targets: [{target: out, key: GOOD}]
  - id: bad
    consumer: mcp-bad
    provider: flt
    max_age: 1h
    runbook: runbooks/generated.md#rotation
`

// every metric the issue lists.
var every = []string{
	"rotator_credential_age_seconds", "rotator_credential_max_age_seconds", "rotator_credential_expiry_timestamp_seconds",
	"rotator_credential_next_rotation_timestamp_seconds", "rotator_credential_status", "rotator_rotation_runs_total",
	"rotator_rotation_step_duration_seconds", "rotator_scheduler_lag_seconds", "rotator_queue_depth", "rotator_audit_unsealed_events",
}

type bundle struct {
	st  store.Store
	e   *rotation.Engine
	srv *httptest.Server
	dir string
}

func setup(t *testing.T) *bundle {
	t.Setenv(faulty.EnableEnv, "1")
	ctx := t.Context()
	dir := t.TempDir()
	st, err := sqlite.Open(ctx, "sqlite://"+filepath.Join(dir, "rotator.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if err := rotation.Migrate(ctx, st); err != nil {
		t.Fatal(err)
	}
	root, _ := filepath.Abs("../..")
	doc := strings.ReplaceAll(testConfig, "{{dir}}", dir)
	cfg, err := config.Parse(filepath.Join(dir, "rotator.yaml"), []byte(doc), config.Options{BaseDir: root})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := inventory.Apply(ctx, st, cfg, inventory.Options{Actor: "test"}); err != nil {
		t.Fatal(err)
	}
	kr, err := secret.NewKeyring(secret.GenerateKey())
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Options{Store: st})
	e, err := rotation.New(rotation.Options{Store: st, Keyring: kr, RunbookDir: root, Observer: m, MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	// A runner that is never started: Rotate enqueues, Execute runs.
	if _, err := rotation.NewRunner(e, rotation.RunnerOptions{Workers: 1}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(m.Handler())
	t.Cleanup(srv.Close)
	return &bundle{st: st, e: e, srv: srv, dir: dir}
}

// rotate runs one manual rotation of id to its end and returns its state.
func (b *bundle) rotate(t *testing.T, id string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	started, err := b.e.Rotate(ctx, rotation.Request{Selection: rotation.Selection{IDs: []string{id}}, Trigger: store.TriggerManual, Actor: "test"})
	if err != nil || len(started) != 1 {
		t.Fatalf("rotate %s: %v %+v", id, err, started)
	}
	if _, _, err := b.e.Execute(ctx, started[0].RunID); err != nil {
		t.Fatalf("execute %s: %v", id, err)
	}
	r, err := b.st.GetRun(ctx, started[0].RunID)
	if err != nil {
		t.Fatal(err)
	}
	return r.State
}

// scrape fetches /metrics and parses it with the Prometheus text parser.
func (b *bundle) scrape(t *testing.T) (map[string]*dto.MetricFamily, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, b.srv.URL, nil)
	req.Header.Set("Accept", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s %v\n%s", resp.Status, err, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("parse scrape: %v\n%s", err, body)
	}
	return fams, string(body)
}

func failedRuns(fams map[string]*dto.MetricFamily) float64 {
	for _, m := range fams["rotator_rotation_runs_total"].GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		if labels["result"] == "failed" && labels["trigger"] == "manual" {
			return m.GetCounter().GetValue()
		}
	}
	return -1
}

// TestScrape: a scrape parses, carries every metric with only the
// documented labels, and a failed rotation adds one to
// rotator_rotation_runs_total{result="failed"}.
func TestScrape(t *testing.T) {
	b := setup(t)
	if s := b.rotate(t, "good"); s != string(rotation.StateSucceeded) {
		t.Fatalf("good rotation ended %s", s)
	}
	fams, body := b.scrape(t)
	for _, name := range every {
		if fams[name] == nil {
			t.Errorf("scrape lacks %s:\n%s", name, body)
		}
	}
	if len(fams) != len(every) {
		t.Errorf("scrape has %d metric families, want exactly %d:\n%s", len(fams), len(every), body)
	}
	for name, f := range fams {
		if !strings.HasPrefix(name, "rotator_credential_") {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "credential", "consumer", "provider":
				case "status":
					if name != "rotator_credential_status" {
						t.Errorf("%s has label status", name)
					}
				default:
					t.Errorf("%s has label %s", name, l.GetName())
				}
			}
		}
	}
	if !strings.Contains(body, `rotator_credential_status{consumer="mcp-good",credential="good",provider="gen",status="healthy"} 1`) {
		t.Errorf("good is not healthy:\n%s", body)
	}
	// The published value is nowhere in the scrape.
	out, err := os.ReadFile(filepath.Join(b.dir, "out.env"))
	if err != nil {
		t.Fatal(err)
	}
	_, val, _ := strings.Cut(strings.TrimSpace(string(out)), "=")
	if len(val) < 20 || strings.Contains(body, strings.Trim(val, `"'`)) {
		t.Errorf("scrape shows the value (or none was published: %q)", val)
	}

	before := failedRuns(fams)
	if before < 0 {
		t.Fatalf("no failed/manual series before the failure:\n%s", body)
	}
	if err := os.WriteFile(filepath.Join(b.dir, "control.json"), []byte(`{"fail": ["mint"]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if s := b.rotate(t, "bad"); s == string(rotation.StateSucceeded) {
		t.Fatalf("faulty rotation succeeded")
	}
	fams, body = b.scrape(t)
	if after := failedRuns(fams); after != before+1 {
		t.Errorf(`rotator_rotation_runs_total{result="failed"} went from %v to %v, want +1:\n%s`, before, after, body)
	}
	if !strings.Contains(body, `rotator_rotation_step_duration_seconds_count{step="mint"}`) {
		t.Errorf("no mint step durations:\n%s", body)
	}
}
