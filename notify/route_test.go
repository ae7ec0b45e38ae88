package notify_test

import (
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/notify"
)

func TestMatches(t *testing.T) {
	t.Parallel()
	cfg := notify.Config{Route: notify.Route{Receiver: "default", Routes: []notify.Route{
		{Receiver: "deploy", Kinds: []notify.Kind{notify.KindCutOver}, Labels: map[string]string{"env": "prod"}},
		{Receiver: "github-team", Consumers: []string{"mcp-server-github"}, Continue: true, GroupBy: []string{"consumer", "label:team"}},
		{Receiver: "audit", Kinds: []notify.Kind{notify.KindChainBroken, notify.KindNeedsAttention}},
	}}}
	cfg.Fill()
	cases := map[string]struct {
		ev   notify.Event
		want string // receivers, comma-separated
	}{
		"failure falls to the default":         {notify.Event{Kind: notify.KindRolledBack}, "default"},
		"prod cut-over to deploy":              {notify.Event{Kind: notify.KindCutOver, Labels: map[string]string{"env": "prod"}}, "deploy"},
		"dev cut-over nowhere":                 {notify.Event{Kind: notify.KindCutOver, Labels: map[string]string{"env": "dev"}}, ""},
		"continue reaches the next sibling":    {notify.Event{Kind: notify.KindNeedsAttention, Consumer: "mcp-server-github"}, "github-team,audit"},
		"continue with no later match":         {notify.Event{Kind: notify.KindRolledBack, Consumer: "mcp-server-github"}, "github-team"},
		"machine kind skips matcherless route": {notify.Event{Kind: notify.KindRetired, Consumer: "mcp-server-github"}, ""},
	}
	for name, c := range cases {
		var got []string
		for _, m := range cfg.Matches(c.ev) {
			got = append(got, m.Receiver)
			if m.GroupInterval != notify.DefaultGroupInterval {
				t.Errorf("%s: inherited group_interval %s", name, m.GroupInterval)
			}
		}
		if strings.Join(got, ",") != c.want {
			t.Errorf("%s: receivers %v, want %q", name, got, c.want)
		}
	}
	m := cfg.Matches(notify.Event{Kind: notify.KindRolledBack, Consumer: "mcp-server-github", Labels: map[string]string{"team": "dev"}})
	if len(m) != 1 || !strings.Contains(m[0].GroupKey, "consumer=mcp-server-github,label:team=dev") {
		t.Errorf("group key %+v", m)
	}
}

func TestGroupDue(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 12, 5, 4, 0, 0, 0, time.UTC)
	m := notify.Match{GroupWait: 30 * time.Second, GroupInterval: 5 * time.Minute}
	cases := map[string]struct {
		first, last, want time.Time
	}{
		"new group waits group_wait":        {t0, time.Time{}, t0.Add(30 * time.Second)},
		"sent group waits group_interval":   {t0, t0.Add(-time.Minute), t0.Add(4 * time.Minute)},
		"long quiet group sends on arrival": {t0, t0.Add(-time.Hour), t0},
	}
	for name, c := range cases {
		if got := notify.GroupDue(c.first, c.last, m); !got.Equal(c.want) {
			t.Errorf("%s: %s, want %s", name, got, c.want)
		}
	}
}
