package main

import (
	"strings"
	"testing"
)

// rotator login refuses what it cannot do: an unknown credential (exit 3)
// and a credential whose provider has no login (exit 2), saying so. The
// login itself (the device grant, the sealed state, the audit event) is
// tested in providers/oauth2refresh and rotation.
func TestLoginRefusals(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "sqlite")
	c.copyRunbooks(t)
	writeFile(t, c.path("rotator.yaml"), readFile(t, quickstartPath))
	c.must(t, 0, "apply", "-f", "rotator.yaml")
	r := c.must(t, 3, "login", "no-such-credential")
	if !strings.Contains(r.stderr, "no-such-credential") {
		t.Errorf("stderr does not name the credential:\n%s", r)
	}
	r = c.must(t, 2, "login", "notes-api-key")
	if !strings.Contains(r.stderr, "has no login") || !strings.Contains(r.stderr, "type generated") {
		t.Errorf("stderr does not say the provider has no login:\n%s", r)
	}
	c.must(t, 2, "login")
}
