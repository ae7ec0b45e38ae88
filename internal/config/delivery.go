package config

import (
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/rotatorhq/rotator/internal/credsel"
)

// Delivery is the config's delivery: section: who may read which
// credentials' values through the consume API's Unix socket (rotator serve
// --socket), by the connecting process's uid or groups.
//
//	delivery:
//	  allow:
//	    - user: alice                 # or uid: 1000
//	      credentials: [github-mcp]
//	    - group: mcp-clients          # or gid: 1001
//	      credentials: ["team=platform", notes-api-key]
type Delivery struct {
	Allow []DeliveryRule
}

// DeliveryRule lets one principal read the credentials its selectors
// match.
type DeliveryRule struct {
	// Kind is "uid", "user", "gid" or "group"; Principal is the number or
	// the name as written (names are looked up when serve starts).
	Kind      string
	Principal string
	// Credentials are the selectors as written; Selectors parsed.
	Credentials []string
	Selectors   []credsel.Selector
	// Line is the line of the rule's list item.
	Line int
}

var (
	deliveryKeys     = []string{"allow"}
	deliveryRuleKeys = []string{"credentials", "gid", "group", "uid", "user"}
	principalKinds   = []string{"uid", "user", "gid", "group"}
	// posixName is the form of a user or group name.
	posixName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.-]{0,63}\$?$`)
)

func (p *parser) delivery(cfg *Config, n *yaml.Node) {
	d := deref(n)
	if isNull(d) {
		return
	}
	if d.Kind != yaml.MappingNode {
		p.errorf(n.Line, "delivery", "must be a mapping with the key allow, got %s", kindName(n))
		return
	}
	for _, e := range p.pairs(d, "delivery") {
		if e.key != "allow" {
			p.errorf(e.knode.Line, join("delivery", e.key), "unknown key; valid keys are %s", quoteList(deliveryKeys))
			continue
		}
		list := deref(e.val)
		if isNull(list) {
			continue
		}
		if list.Kind != yaml.SequenceNode {
			p.errorf(e.val.Line, "delivery.allow", "must be a list of rules such as {user: alice, credentials: [github-mcp]}, got %s", kindName(e.val))
			continue
		}
		if cfg.Delivery == nil {
			cfg.Delivery = &Delivery{}
		}
		for i, item := range list.Content {
			if r, ok := p.deliveryRule(item, index("delivery.allow", i)); ok {
				cfg.Delivery.Allow = append(cfg.Delivery.Allow, r)
			}
		}
	}
}

func (p *parser) deliveryRule(n *yaml.Node, path string) (DeliveryRule, bool) {
	d := deref(n)
	if d == nil || d.Kind != yaml.MappingNode {
		p.errorf(n.Line, path, "must be a mapping such as {user: alice, credentials: [github-mcp]}, got %s", kindName(n))
		return DeliveryRule{}, false
	}
	r := DeliveryRule{Line: d.Line}
	ok := true
	var kinds []string
	for _, e := range p.pairs(d, path) {
		field := join(path, e.key)
		switch e.key {
		case "uid", "gid", "user", "group":
			kinds = append(kinds, e.key)
			v, good := p.scalar(e.val, field)
			if !good {
				ok = false
				continue
			}
			r.Kind, r.Principal = e.key, v
			switch e.key {
			case "uid", "gid":
				if id, err := strconv.ParseUint(v, 10, 32); err != nil || id == 1<<32-1 {
					p.errorf(e.val.Line, field, "must be a numeric %s such as 1000", e.key)
					ok = false
				}
			default:
				if !posixName.MatchString(v) {
					example := map[string]string{"user": "alice", "group": "mcp-clients"}[e.key]
					p.errorf(e.val.Line, field, "must be a %s name such as %s (letters, digits, '_', '.', '-')", e.key, example)
					ok = false
				}
			}
		case "credentials":
			r.Credentials = p.stringList(e.val, field, `[github-mcp, "team=platform"]`)
			for j, s := range r.Credentials {
				sel, err := credsel.Parse(s)
				if err != nil {
					p.errorf(e.val.Line, index(field, j), "%v", err)
					ok = false
					continue
				}
				r.Selectors = append(r.Selectors, sel)
			}
		default:
			p.errorf(e.knode.Line, field, "unknown key; valid keys are %s", quoteList(deliveryRuleKeys))
			ok = false
		}
	}
	switch {
	case len(kinds) == 0:
		p.errorf(d.Line, path, "names nobody: give one of %s", quoteList(principalKinds))
		ok = false
	case len(kinds) > 1:
		p.errorf(d.Line, path, "names %s; give exactly one of %s per rule", quoteList(kinds), quoteList(principalKinds))
		ok = false
	}
	if len(r.Credentials) == 0 && ok {
		p.errorf(d.Line, join(path, "credentials"), "is missing or empty: list the credential ids or selectors (team=platform, or * for all) this %s may read", r.Kind)
		ok = false
	}
	return r, ok
}

// deliveryWarnings warns of delivery rules that name, by id, a credential
// the file does not declare (a typo, or one removed since).
func (p *parser) deliveryWarnings(cfg *Config) {
	if cfg.Delivery == nil {
		return
	}
	ids := make(map[string]bool, len(cfg.Credentials))
	for _, c := range cfg.Credentials {
		ids[c.ID] = true
	}
	for i, r := range cfg.Delivery.Allow {
		for j, s := range r.Selectors {
			if s.ID != "" && !ids[s.ID] {
				p.warnf(r.Line, index(index("delivery.allow", i)+".credentials", j), "no credential %s is declared in this file", show(s.ID))
			}
		}
	}
}
