package credsel_test

import (
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/internal/credsel"
)

func TestParseAndMatch(t *testing.T) {
	t.Parallel()
	labels := map[string]string{"team": "platform", "env": "prod"}
	cases := map[string]struct {
		str   string
		match bool // of credential "github-mcp" with labels
	}{
		"github-mcp":              {"github-mcp", true},
		" other ":                 {"other", false},
		"*":                       {"*", true},
		"team=platform":           {"team=platform", true},
		"team=platform, env=prod": {"env=prod,team=platform", true},
		"team=platform,env=dev":   {"env=dev,team=platform", false},
		"owner=x":                 {"owner=x", false},
		"team=":                   {"team=", false},
	}
	for in, want := range cases {
		s, err := credsel.Parse(in)
		if err != nil {
			t.Errorf("Parse(%q): %v", in, err)
			continue
		}
		if s.String() != want.str || s.Matches("github-mcp", labels) != want.match {
			t.Errorf("Parse(%q) = %q matching %v; want %q matching %v", in, s, s.Matches("github-mcp", labels), want.str, want.match)
		}
	}
	for in, want := range map[string]string{
		"":              "empty",
		"Upper":         "not a credential id",
		"a b":           "not a credential id",
		"=x":            "is not key=value",
		"team=a,team=b": "given twice",
		"team=a,,x=y":   "is not key=value",
	} {
		if _, err := credsel.Parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) error %v; want one containing %q", in, err, want)
		}
	}
	if (credsel.Selector{}).Matches("x", nil) {
		t.Error("the zero selector matches")
	}
}
