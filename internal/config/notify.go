package config

import (
	"net/url"
	"slices"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/rotatorhq/rotator/notify"
	notifyreg "github.com/rotatorhq/rotator/notify/registry"
)

var (
	notifyKeys = []string{"expiring_within", "links", "receivers", "retention", "route"}
	routeKeys  = []string{"consumers", "continue", "group_by", "group_interval", "group_wait", "kinds", "labels", "receiver", "repeat_interval", "routes"}
	linkKeys   = []string{"run", "runbook"}
)

// notifySection parses the notify: section (receivers, route, links) into
// cfg.Notify, reporting problems with file, line and field like the rest.
func (p *parser) notifySection(cfg *Config, n *yaml.Node) {
	d := deref(n)
	if isNull(d) {
		return
	}
	if d.Kind != yaml.MappingNode {
		p.errorf(n.Line, "notify", "must be a mapping with the keys %s, got %s", quoteList(notifyKeys), kindName(n))
		return
	}
	nc := &notify.Config{Receivers: map[string]notify.ReceiverConfig{}}
	var routeNode *yaml.Node
	routeLine := d.Line
	for _, e := range p.pairs(d, "notify") {
		path := join("notify", e.key)
		switch e.key {
		case "receivers":
			for _, pl := range p.plugins(e.val, "notify.receivers") {
				nc.Receivers[pl.name] = notify.ReceiverConfig{Name: pl.name, Type: pl.typ, Settings: pl.settings, Line: pl.line, Lines: pl.lines}
				if pl.typ == "" || pl.typ == "\x00" {
					continue
				}
				f, ok := notifyreg.Lookup(pl.typ)
				if !ok {
					p.errorf(pl.typeLine, join(pl.path, "type"), "unknown receiver type %s; registered types are %s", show(pl.typ), quoteList(notifyreg.Types()))
					continue
				}
				p.settingsErrors(f.Validate(pl.settings), pl.path, pl.lines, pl.line)
			}
		case "route":
			routeNode, routeLine = e.val, e.knode.Line
		case "links":
			for _, f := range p.pairs(deref(e.val), path) {
				fpath := join(path, f.key)
				v, ok := p.scalar(f.val, fpath)
				if !ok {
					continue
				}
				if u, err := url.Parse(strings.NewReplacer("{run_id}", "x", "{credential}", "x", "{runbook}", "x").Replace(v)); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
					p.errorf(f.val.Line, fpath, "must be an http(s) URL template such as https://rotator.example.com/runs/{run_id}")
					continue
				}
				switch f.key {
				case "run":
					nc.Links.Run = v
				case "runbook":
					nc.Links.Runbook = v
				default:
					p.errorf(f.knode.Line, fpath, "unknown key; valid keys are %s", quoteList(linkKeys))
				}
			}
			if dv := deref(e.val); dv != nil && !isNull(dv) && dv.Kind != yaml.MappingNode {
				p.errorf(e.val.Line, path, "must be a mapping with the keys %s, got %s", quoteList(linkKeys), kindName(e.val))
			}
		case "expiring_within", "retention":
			fields := map[string]pair{e.key: e}
			if v, line, ok := p.duration(fields, e.key, "notify"); ok {
				if v <= 0 {
					p.errorf(line, path, "must be positive")
				}
				if e.key == "retention" {
					nc.Retention = v
				} else {
					nc.ExpiringWithin = v
				}
			}
		default:
			p.errorf(e.knode.Line, path, "unknown key; valid keys are %s", quoteList(notifyKeys))
		}
	}
	if routeNode == nil || isNull(deref(routeNode)) {
		p.errorf(routeLine, "notify.route", "is required: the default route, such as {receiver: %s}", firstName(nc.Receivers))
	} else {
		nc.Route = p.route(nc, routeNode, "notify.route", true)
	}
	nc.Fill()
	used := map[string]bool{}
	markUsed(&nc.Route, used)
	for name, r := range nc.Receivers {
		if !used[name] {
			p.warnf(r.Line, join("notify.receivers", name), "receiver is defined but no route sends to it")
		}
	}
	cfg.Notify = nc
}

func firstName(m map[string]notify.ReceiverConfig) string {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	if len(names) == 0 {
		return "NAME"
	}
	return names[0]
}

func markUsed(r *notify.Route, used map[string]bool) {
	used[r.Receiver] = true
	for i := range r.Routes {
		markUsed(&r.Routes[i], used)
	}
}

// route parses one route and its children.
func (p *parser) route(nc *notify.Config, n *yaml.Node, path string, root bool) notify.Route {
	d := deref(n)
	r := notify.Route{Line: n.Line}
	if d == nil || d.Kind != yaml.MappingNode {
		p.errorf(n.Line, path, "must be a mapping with the keys %s, got %s", quoteList(routeKeys), kindName(n))
		return r
	}
	fields := map[string]pair{}
	for _, e := range p.pairs(d, path) {
		fields[e.key] = e
		fpath := join(path, e.key)
		switch e.key {
		case "receiver":
			if v, ok := p.scalar(e.val, fpath); ok {
				r.Receiver = v
				if _, known := nc.Receivers[v]; !known {
					p.errorf(e.val.Line, fpath, "no receiver %s under notify.receivers; defined receivers are %s", show(v), quoteList(sortedKeys(nc.Receivers)))
				}
			}
		case "kinds":
			for i, k := range p.stringList(e.val, fpath, "[rotation.failed, credential.needs_attention]") {
				if !notify.Known(notify.Kind(k)) {
					p.errorf(e.val.Line, index(fpath, i), "unknown event kind %s; kinds are %s", show(k), quoteList(kindNames()))
					continue
				}
				r.Kinds = append(r.Kinds, notify.Kind(k))
			}
		case "consumers":
			r.Consumers = p.stringList(e.val, fpath, "[mcp-server-github]")
		case "labels":
			r.Labels = p.labels(e.val, fpath)
		case "continue":
			if v := deref(e.val); v == nil || v.Tag != "!!bool" {
				p.errorf(e.val.Line, fpath, "must be true or false, got %s", kindName(e.val))
			} else {
				r.Continue = v.Value == "true"
			}
		case "group_by":
			r.GroupBy = []string{}
			for i, g := range p.stringList(e.val, fpath, "[kind, consumer]") {
				if !notify.ValidGroupBy(g) {
					p.errorf(e.val.Line, index(fpath, i), "cannot group by %s; use %s or label:NAME", show(g), quoteList(notify.GroupByFields))
					continue
				}
				r.GroupBy = append(r.GroupBy, g)
			}
		case "group_wait", "group_interval", "repeat_interval":
		case "routes":
			rd := deref(e.val)
			if isNull(rd) {
				continue
			}
			if rd.Kind != yaml.SequenceNode {
				p.errorf(e.val.Line, fpath, "must be a list of routes, got %s", kindName(e.val))
				continue
			}
			for i, item := range rd.Content {
				r.Routes = append(r.Routes, p.route(nc, item, index(fpath, i), false))
			}
		default:
			p.errorf(e.knode.Line, fpath, "unknown key; valid keys are %s", quoteList(routeKeys))
		}
	}
	for _, k := range []struct {
		key string
		dst *time.Duration
	}{{"group_wait", &r.GroupWait}, {"group_interval", &r.GroupInterval}, {"repeat_interval", &r.RepeatInterval}} {
		if v, line, ok := p.duration(fields, k.key, path); ok {
			if v <= 0 || (k.key == "group_interval" && v < time.Second) {
				p.errorf(line, join(path, k.key), "must be at least 1s")
				continue
			}
			*k.dst = v
		}
	}
	if root {
		if r.Receiver == "" {
			p.errorf(r.Line, join(path, "receiver"), "is required on the default route")
		}
		if len(r.Kinds)+len(r.Consumers)+len(r.Labels) > 0 {
			p.errorf(r.Line, path, "the default route matches every event; put kinds, consumers and labels on its routes")
		}
	}
	return r
}

func sortedKeys(m map[string]notify.ReceiverConfig) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func kindNames() []string {
	out := make([]string, len(notify.Kinds))
	for i, k := range notify.Kinds {
		out[i] = string(k)
	}
	return out
}
