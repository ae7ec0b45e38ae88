package config

import (
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/notify"
)

const notifyValid = `notify:
  links:
    run: https://rotator.example.com/runs/{run_id}
    runbook: https://git.example.com/ops/blob/main/{runbook}
  receivers:
    oncall:
      type: slack
      url: ${env:SLACK_WEBHOOK_URL}
    deploy:
      type: webhook
      url: https://deploy.example.com/hooks/rotator
      secret: ${file:/run/secrets/webhook}
    security:
      type: email
      host: smtp.example.com
      from: rotator@example.com
      to: [security@example.com]
      username: rotator
      password: ${env:SMTP_PASSWORD}
  route:
    receiver: oncall
    group_wait: 10s
    group_interval: 1m
    repeat_interval: 2h
    routes:
      - receiver: deploy
        kinds: [rotation.cut_over]
        labels: {env: prod}
        continue: true
      - receiver: security
        kinds: [rotation.emergency, audit.chain_broken]
        group_by: [kind, consumer]
`

func TestNotifySection(t *testing.T) {
	t.Parallel()
	cfg, err := Parse("rotator.yaml", []byte(notifyValid), Options{})
	if err != nil {
		t.Fatal(err)
	}
	n := cfg.Notify
	if n == nil || len(n.Receivers) != 3 || n.Receivers["deploy"].Type != "webhook" || n.Receivers["deploy"].Line != 9 {
		t.Fatalf("notify = %+v", n)
	}
	r := n.Route
	if r.Receiver != "oncall" || r.GroupWait != 10*time.Second || r.GroupInterval != time.Minute || r.RepeatInterval != 2*time.Hour || len(r.Routes) != 2 {
		t.Fatalf("route = %+v", r)
	}
	// Children inherit the timing; group_by defaults to kind.
	if c := r.Routes[0]; c.GroupInterval != time.Minute || len(c.GroupBy) != 1 || c.GroupBy[0] != "kind" || !c.Continue || c.Labels["env"] != "prod" {
		t.Fatalf("child = %+v", c)
	}
	if n.ExpiringWithin != notify.DefaultExpiringWithin || n.Links.Run == "" {
		t.Fatalf("defaults: %+v", n)
	}
	// The engine writes cut_over (a route names it), not retired or staged.
	if !n.Wants(notify.KindCutOver) || n.Wants(notify.KindRetired) || n.Wants(notify.KindStaged) || !n.Wants(notify.KindRolledBack) {
		t.Fatal("Wants: want cut_over and the kinds for people only")
	}
	// Routing: a prod cut-over goes to deploy only (a machine kind never
	// falls through to the default route); a failure to oncall.
	cut := notify.Event{Kind: notify.KindCutOver, Labels: map[string]string{"env": "prod"}}
	if m := n.Matches(cut); len(m) != 1 || m[0].Receiver != "deploy" {
		t.Fatalf("cut_over → %+v", m)
	}
	if m := n.Matches(notify.Event{Kind: notify.KindCutOver, Labels: map[string]string{"env": "dev"}}); len(m) != 0 {
		t.Fatalf("dev cut_over → %+v, want nowhere", m)
	}
	if m := n.Matches(notify.Event{Kind: notify.KindRolledBack}); len(m) != 1 || m[0].Receiver != "oncall" {
		t.Fatalf("rolled_back → %+v", m)
	}
	if m := n.Matches(notify.Event{Kind: notify.KindEmergency, Consumer: "x"}); len(m) != 1 || m[0].Receiver != "security" || !strings.Contains(m[0].GroupKey, "consumer=x") {
		t.Fatalf("emergency → %+v", m)
	}
}

func TestNotifySectionErrors(t *testing.T) {
	t.Parallel()
	cases := map[string]struct{ src, want string }{
		"unknown type": {"notify:\n  receivers:\n    x:\n      type: pager\n  route: {receiver: x}\n",
			"rotator.yaml:4: notify.receivers.x.type: unknown receiver type"},
		"literal webhook secret": {"notify:\n  receivers:\n    x:\n      type: webhook\n      url: https://e.example.com\n      secret: ${env:OK}\n    y:\n      type: slack\n      url: https://hooks.example.com/services/abc\n  route: {receiver: x}\n",
			"rotator.yaml:9: notify.receivers.y.url: must be a reference"},
		"unknown receiver in route": {"notify:\n  receivers:\n    x: {type: slack, url: \"${env:U}\"}\n  route:\n    receiver: x\n    routes:\n      - receiver: nobody\n",
			"rotator.yaml:7: notify.route.routes[0].receiver: no receiver \"nobody\""},
		"unknown kind": {"notify:\n  receivers:\n    x: {type: slack, url: \"${env:U}\"}\n  route:\n    receiver: x\n    routes:\n      - kinds: [run.exploded]\n",
			"notify.route.routes[0].kinds[0]: unknown event kind \"run.exploded\""},
		"bad duration": {"notify:\n  receivers:\n    x: {type: slack, url: \"${env:U}\"}\n  route:\n    receiver: x\n    group_interval: soon\n",
			"rotator.yaml:6: notify.route.group_interval: invalid duration"},
		"no route": {"notify:\n  receivers:\n    x: {type: slack, url: \"${env:U}\"}\n",
			"notify.route: is required"},
		"bad group_by": {"notify:\n  receivers:\n    x: {type: slack, url: \"${env:U}\"}\n  route:\n    receiver: x\n    group_by: [colour]\n",
			"notify.route.group_by[0]: cannot group by \"colour\""},
		"unknown key": {"notify:\n  receivers:\n    x: {type: slack, url: \"${env:U}\"}\n  route: {receiver: x, matchers: [a]}\n",
			"rotator.yaml:4: notify.route.matchers: unknown key"},
	}
	for name, c := range cases {
		_, err := Parse("rotator.yaml", []byte(c.src), Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: error %v, want %q", name, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "hooks.example.com/services/abc") {
			t.Errorf("%s: an error shows the webhook URL", name)
		}
	}
}
