package api_test

import (
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/internal/api"
	"github.com/rotatorhq/rotator/internal/config"
)

func TestResolveRules(t *testing.T) {
	t.Parallel()
	doc := `
delivery:
  allow:
    - user: root
      credentials: [a]
    - group: root
      credentials: ["team=x"]
    - uid: 1234
      credentials: ["*"]
    - user: no-such-user-xyz
      credentials: [a]
`
	cfg, err := config.Parse("rotator.yaml", []byte(doc), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = api.ResolveRules(cfg)
	if err == nil || !strings.Contains(err.Error(), `rotator.yaml:10: delivery.allow[3].user: no user "no-such-user-xyz" on this host`) {
		t.Fatalf("ResolveRules: %v; want an error naming file, line, field and user", err)
	}
	cfg.Delivery.Allow = cfg.Delivery.Allow[:3]
	rules, err := api.ResolveRules(cfg)
	if err != nil || len(rules) != 3 {
		t.Fatalf("ResolveRules = %d rules, %v", len(rules), err)
	}
	if rules[0].UID == nil || *rules[0].UID != 0 || rules[1].GID == nil || *rules[1].GID != 0 || rules[2].UID == nil || *rules[2].UID != 1234 {
		t.Errorf("rules: %+v", rules)
	}
	if r, err := api.ResolveRules(nil); r != nil || err != nil {
		t.Errorf("no config: %v, %v", r, err)
	}
}
