package postgres

import (
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/providers"
)

// TestProbe: a superuser admin_dsn passes; a role without CREATEROLE is
// broken (it cannot change passwords); a wrong password is broken with the
// advice to correct it; no password appears in any message.
func TestProbe(t *testing.T) {
	t.Parallel()
	e := newPGEnv(t)
	probe := func(dsn string) (providers.ProbeResponse, error) {
		p, err := New(Config{AdminDSN: secret.NewString(dsn)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		return p.Probe(t.Context(), providers.ProbeRequest{})
	}
	res, err := probe(e.dsn)
	if err != nil || !strings.Contains(strings.Join(res.Checked, " "), "superuser") {
		t.Errorf("superuser admin_dsn: %+v, %v", res, err)
	}

	weak, pw := "rtr_weak_"+randomHex(4), "weak-"+randomHex(12)
	adminExec(t, e.dsn, "CREATE ROLE "+weak+" LOGIN PASSWORD '"+pw+"' IN ROLE "+passwordAuthGroup)
	t.Cleanup(func() { adminExec(t, e.dsn, "DROP ROLE IF EXISTS "+weak) })
	u, _ := url.Parse(e.dsn)
	for name, tc := range map[string]struct {
		password, wantErr, wantFix string
	}{
		"no CREATEROLE":  {pw, "neither SUPERUSER nor CREATEROLE", "CREATEROLE"},
		"wrong password": {"wrong-" + randomHex(12), "password authentication failed", "refused admin_dsn"},
	} {
		u.User = url.UserPassword(weak, tc.password)
		_, err := probe(u.String())
		var pe *providers.ProbeError
		if !errors.As(err, &pe) {
			t.Errorf("%s: %v, want a *providers.ProbeError", name, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(pe.Remedy(), tc.wantFix) {
			t.Errorf("%s: %v (fix %q)", name, err, pe.Remedy())
		}
		if strings.Contains(err.Error(), tc.password) || strings.Contains(pe.Remedy(), tc.password) {
			t.Errorf("%s: the probe's error shows the password: %v", name, err)
		}
	}
}
