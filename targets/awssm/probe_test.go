package awssm

import (
	"errors"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/targets"
)

// TestProbe: DescribeSecret proves an existing secret; a missing one is
// broken unless create_if_missing; the write permissions stay unproven.
func TestProbe(t *testing.T) {
	t.Parallel()
	f := newFakeSM(t)
	f.addSecret("mcp/present")
	probe := func(cfg Config) (targets.ProbeResponse, error) {
		return New(f.client(), cfg, nil).Probe(t.Context(), targets.ProbeRequest{})
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
	if n := f.count("PutSecretValue") + f.count("CreateSecret") + f.count("UpdateSecretVersionStage"); n != 0 {
		t.Errorf("the probe wrote: %d write calls", n)
	}
}
