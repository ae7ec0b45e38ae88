package redisacl

import (
	"errors"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/providers"
)

// TestProbe: an admin user with the ACL commands passes; a wrong password
// and a user that may not run ACL SETUSER are broken, with advice; no
// password appears in any message.
func TestProbe(t *testing.T) {
	t.Parallel()
	admin := newClient(redisAddr(), "", "")
	defer admin.Close()
	full, limited := newUser(t), newUser(t)
	pw := "probe-" + strings.Repeat("x", 4) + limited
	for user, rules := range map[string][]any{
		full:    {"on", ">" + pw, "+@all", "~*", "&*"},
		limited: {"on", ">" + pw, "+acl|whoami", "+acl|dryrun", "+info"},
	} {
		if err := admin.Do(t.Context(), append([]any{"ACL", "SETUSER", user}, rules...)...).Err(); err != nil {
			t.Fatal(err)
		}
	}
	probe := func(user, password string) (providers.ProbeResponse, error) {
		p := New(Config{Addr: redisAddr(), Username: user, Password: secret.NewString(password)}, nil)
		defer p.Close()
		return p.Probe(t.Context(), providers.ProbeRequest{})
	}
	res, err := probe(full, pw)
	if err != nil || !strings.Contains(strings.Join(res.Checked, " "), "may run ACL SETUSER") {
		t.Errorf("full admin: %+v, %v", res, err)
	}
	wrong := "wrong-" + pw
	for name, tc := range map[string]struct{ user, password, wantErr, wantFix string }{
		"wrong password": {full, wrong, "WRONGPASS", "refused username/password"},
		"no ACL SETUSER": {limited, pw, "may not run ACL SETUSER", "+acl|setuser"},
	} {
		_, err := probe(tc.user, tc.password)
		var pe *providers.ProbeError
		if !errors.As(err, &pe) {
			t.Errorf("%s: %v, want a *providers.ProbeError", name, err)
			continue
		}
		if !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(pe.Remedy(), tc.wantFix) {
			t.Errorf("%s: %v (fix %q)", name, err, pe.Remedy())
		}
		if strings.Contains(err.Error(), tc.password) {
			t.Errorf("%s: the error shows the password: %v", name, err)
		}
	}
}
