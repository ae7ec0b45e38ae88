package awssm

import (
	"errors"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/internal/testaws"
	"github.com/rotatorhq/rotator/targets"
)

// TestProbe: DescribeSecret proves an existing secret; a missing one is
// broken unless create_if_missing; the write permissions stay unproven.
func TestProbe(t *testing.T) {
	t.Parallel()
	f := testaws.NewSecretsManager(t)
	f.AddSecret("mcp/present")
	probe := func(cfg Config) (targets.ProbeResponse, error) {
		return New(f.Client(), cfg, nil).Probe(t.Context(), targets.ProbeRequest{})
	}

	res, err := probe(Config{SecretID: "mcp/present"})
	if err != nil || len(res.Checked) == 0 || !strings.Contains(strings.Join(res.Unproven, " "), "PutSecretValue") {
		t.Errorf("existing secret: %+v, %v", res, err)
	}
	_, err = probe(Config{SecretID: "mcp/absent"})
	var pe *targets.ProbeError
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "does not exist") || !strings.Contains(pe.Remedy(), "create_if_missing") {
		t.Errorf("missing secret: %v", err)
	}
	res, err = probe(Config{SecretID: "mcp/absent", CreateIfMissing: true})
	if err != nil || !strings.Contains(strings.Join(res.Unproven, " "), "CreateSecret") {
		t.Errorf("missing secret with create_if_missing: %+v, %v", res, err)
	}
	if n := f.Count("PutSecretValue") + f.Count("CreateSecret") + f.Count("UpdateSecretVersionStage"); n != 0 {
		t.Errorf("the probe wrote: %d write calls", n)
	}
}
