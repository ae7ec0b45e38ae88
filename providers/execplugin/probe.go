package execplugin

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/rotatorhq/rotator/providers"
)

// Probe implements providers.Prober: it checks, as apply's host check
// does, that the plugin's executable and working directory exist here and
// that this user may run it. It does not run the plugin (the protocol has
// no read-only step), so what the plugin itself reaches is unproven.
func (p *Provider) Probe(ctx context.Context, _ providers.ProbeRequest) (providers.ProbeResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.ProbeResponse{}, err
	}
	if len(p.cfg.Command) == 0 {
		return providers.ProbeResponse{}, providers.NewProbeError(errors.New("exec: no command configured"), "set command to the plugin's argv")
	}
	if errs := checkHost(p.cfg); len(errs) > 0 {
		msgs := make([]string, len(errs))
		for i, e := range errs {
			msgs[i] = e.Field + ": " + e.Msg
		}
		return providers.ProbeResponse{}, providers.NewProbeError(
			fmt.Errorf("exec plugin %s: %s: %w", p.cfg.Command[0], strings.Join(msgs, "; "), providers.ErrPermanent),
			"install the plugin where command[0] names it, executable by the user rotator runs as")
	}
	return providers.ProbeResponse{
		Checked:  []string{fmt.Sprintf("plugin executable %s exists and may be run by this user", p.cfg.Command[0])},
		Unproven: []string{"that the plugin reaches its own system: the plugin protocol has no read-only step, so it is not run"},
	}, nil
}

var _ providers.Prober = (*Provider)(nil)
