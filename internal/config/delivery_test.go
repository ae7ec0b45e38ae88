package config_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/internal/config"
)

func TestDeliverySection(t *testing.T) {
	t.Parallel()
	doc := `
delivery:
  allow:
    - user: alice
      credentials: [github-mcp, "team=platform"]
    - gid: 1001
      credentials: ["*"]
`
	cfg, err := config.Parse("rotator.yaml", []byte(doc), config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Delivery == nil || len(cfg.Delivery.Allow) != 2 {
		t.Fatalf("delivery = %+v", cfg.Delivery)
	}
	r0, r1 := cfg.Delivery.Allow[0], cfg.Delivery.Allow[1]
	if r0.Kind != "user" || r0.Principal != "alice" || r0.Line != 4 || len(r0.Selectors) != 2 ||
		!r0.Selectors[0].Matches("github-mcp", nil) || !r0.Selectors[1].Matches("x", map[string]string{"team": "platform"}) {
		t.Errorf("rule 0 = %+v", r0)
	}
	if r1.Kind != "gid" || r1.Principal != "1001" || !r1.Selectors[0].All {
		t.Errorf("rule 1 = %+v", r1)
	}
	if len(cfg.Warnings) != 1 || !strings.Contains(cfg.Warnings[0].Error(), "rotator.yaml:4: delivery.allow[0].credentials[0]: no credential \"github-mcp\" is declared in this file") {
		t.Errorf("warnings %v; want one for github-mcp", cfg.Warnings)
	}
	if cfg, err := config.Parse("rotator.yaml", []byte("credentials: []\n"), config.Options{}); err != nil || cfg.Delivery != nil {
		t.Errorf("no delivery section: %+v, %v", cfg.Delivery, err)
	}

	bad := `
delivery:
  allow:
    - uid: 1000
      gid: 3
      credentials: [x]
    - group: "bad name"
      credentials: [Bad]
    - uid: -1
      credentials: [x]
    - user: bob
    - credentials: [x]
    - user: carol
      credentials: [x]
      mode: 0600
  deny: []
`
	_, err = config.Parse("rotator.yaml", []byte(bad), config.Options{})
	var errs *config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse: %v; want *config.Errors", err)
	}
	for _, want := range []string{
		"rotator.yaml:4: delivery.allow[0]: names uid, gid; give exactly one",
		"rotator.yaml:7: delivery.allow[1].group: must be a group name",
		"rotator.yaml:8: delivery.allow[1].credentials[0]: credential selector \"Bad\": not a credential id",
		"rotator.yaml:9: delivery.allow[2].uid: must be a numeric uid",
		"rotator.yaml:11: delivery.allow[3].credentials: is missing or empty",
		"rotator.yaml:12: delivery.allow[4]: names nobody",
		"rotator.yaml:15: delivery.allow[5].mode: unknown key",
		"rotator.yaml:16: delivery.deny: unknown key; valid keys are allow",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("errors lack %q:\n%v", want, err)
		}
	}
}
