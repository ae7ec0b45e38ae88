package config

import (
	"cmp"
	"maps"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/rotatorhq/rotator/internal/secret"
)

// useRef ends every literal-secret message.
const useRef = "use a reference such as ${env:NAME}, ${file:/path} or ${aws-sm:secret-id}"

// scanKey identifies one visit of the secret scan: the same node may be
// reached through aliases under another key or context.
type scanKey struct {
	n        *yaml.Node
	key      string
	settings bool
}

// scanner walks the whole document looking for literal secrets (DESIGN.md
// §2.1), independently of the structural parse, so that every scalar is
// checked, including those under unknown or misspelt keys.
type scanner struct {
	p    *parser
	seen map[scanKey]bool
}

// scanSecrets checks every scalar and every mapping key of the document.
// In provider and target settings (every key but type) and in credential
// settings, a random-looking value is an error under any key.
func (p *parser) scanSecrets(root *yaml.Node) {
	s := &scanner{p: p, seen: map[scanKey]bool{}}
	if root.Kind != yaml.MappingNode {
		s.walk(root, "", "", false, 0)
		return
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		key := s.key(k, "")
		path := join("", key)
		switch vd := deref(v); {
		case vd == nil:
		case (key == "providers" || key == "targets") && vd.Kind == yaml.MappingNode:
			s.seen[scanKey{vd, key, false}] = true
			for j := 0; j+1 < len(vd.Content); j += 2 {
				name, body := vd.Content[j], vd.Content[j+1]
				bpath := join(path, s.key(name, path))
				bd := deref(body)
				if bd == nil || bd.Kind != yaml.MappingNode {
					s.walk(body, bpath, "", true, 2)
					continue
				}
				s.seen[scanKey{bd, "", true}] = true
				for f := 0; f+1 < len(bd.Content); f += 2 {
					field := s.key(bd.Content[f], bpath)
					s.walk(bd.Content[f+1], join(bpath, field), field, field != "type", 3)
				}
			}
			continue
		case key == "credentials" && vd.Kind == yaml.SequenceNode:
			s.seen[scanKey{vd, key, false}] = true
			for j, item := range vd.Content {
				s.credential(item, index(path, j))
			}
			continue
		}
		s.walk(v, path, key, false, 1)
	}
}

// scanCredential checks one item of credentials: parsed on its own.
func (p *parser) scanCredential(item *yaml.Node, ipath string) {
	s := &scanner{p: p, seen: map[scanKey]bool{}}
	s.credential(item, ipath)
}

// credential checks one item of credentials:; in its settings, a
// random-looking value is an error under any key.
func (s *scanner) credential(item *yaml.Node, ipath string) {
	it := deref(item)
	if it == nil || it.Kind != yaml.MappingNode {
		s.walk(item, ipath, "credentials", false, 2)
		return
	}
	s.seen[scanKey{it, "credentials", false}] = true
	for f := 0; f+1 < len(it.Content); f += 2 {
		field := s.key(it.Content[f], ipath)
		s.walk(it.Content[f+1], join(ipath, field), field, field == "settings", 3)
	}
}

// walk checks n and everything below it. key is the closest mapping key
// above n; inSettings says whether n is part of plugin settings.
func (s *scanner) walk(n *yaml.Node, path, key string, inSettings bool, depth int) {
	d := deref(n)
	if d == nil || depth > maxDepth {
		return
	}
	sk := scanKey{d, key, inSettings}
	if s.seen[sk] {
		return
	}
	s.seen[sk] = true
	if s.p.overLimit(d, path) {
		return
	}
	switch d.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(d.Content); i += 2 {
			k := s.key(d.Content[i], path)
			s.walk(d.Content[i+1], join(path, k), k, inSettings, depth+1)
		}
	case yaml.SequenceNode:
		for i, item := range d.Content {
			s.walk(item, index(path, i), key, inSettings, depth+1)
		}
	case yaml.ScalarNode:
		s.value(d, n.Line, path, key, inSettings)
	}
}

// key checks a mapping key for token patterns and returns its text (empty
// for a key that is not a plain value, which the structural parse reports).
func (s *scanner) key(k *yaml.Node, path string) string {
	kd := deref(k)
	if kd == nil {
		return ""
	}
	if kd.Kind != yaml.ScalarNode {
		s.walk(k, path, "", false, maxDepth-1)
		return ""
	}
	if s.p.overLimit(kd, path) {
		return kd.Value
	}
	if kind, ok := secret.DetectToken(kd.Value); ok {
		s.p.suspects[kd.Value] = true
		s.p.errorf(k.Line, join(path, kd.Value), "a key looks like %s; secrets must never be written in configuration", article(kind))
	}
	return kd.Value
}

// value applies the literal-secret rules to one scalar.
func (s *scanner) value(n *yaml.Node, line int, path, key string, inSettings bool) {
	v := n.Value
	if n.Tag == "!!null" || v == "" {
		return
	}
	name := keyName(key)
	kind, tok := secret.DetectToken(v)
	if secret.IsRef(v) {
		if _, err := secret.ParseRef(v); err != nil {
			if tok || secret.HighEntropy(v) {
				s.p.suspects[v] = true
			}
			s.p.errorf(line, path, "%v", err)
		}
		return
	}
	sensitive := secret.IsSensitiveKey(key) && n.Tag != "!!bool"
	random := inSettings && !identifierKey(key) && secret.HighEntropy(v)
	if !sensitive && !tok && !random {
		return
	}
	s.p.suspects[v] = true
	switch {
	case sensitive && tok:
		s.p.errorf(line, path, "literal secret in %s (it looks like %s): %s", name, article(kind), useRef)
	case sensitive:
		s.p.errorf(line, path, "literal secret in %s: %s", name, useRef)
	case tok:
		s.p.errorf(line, path, "%s holds what looks like %s; secrets must never be written in configuration: %s", name, article(kind), useRef)
	default:
		s.p.errorf(line, path, "%s holds a random-looking value that may be a secret: %s (identifiers belong under keys named id or *_id)", name, useRef)
	}
}

// article prefixes a token kind with "a" or "an".
func article(kind string) string {
	if kind != "" && strings.ContainsRune("AEIOUaeiou", rune(kind[0])) {
		return "an " + kind
	}
	return "a " + kind
}

// keyName names a key in a message, unless the key itself looks secret.
func keyName(key string) string {
	switch {
	case key == "":
		return "a value"
	case looksSecret(key):
		return "a key"
	case plainName.MatchString(key):
		return key
	}
	return strconv.Quote(key)
}

// identifierKey reports whether a key names an identifier (client_id,
// key_id, secret_arn), whose values are often random-looking but public.
func identifierKey(key string) bool {
	k := strings.ToLower(strings.ReplaceAll(key, "-", "_"))
	for _, suffix := range []string{"_id", "_ids", "_arn"} {
		if strings.HasSuffix(k, suffix) {
			return true
		}
	}
	return k == "id" || k == "arn"
}

// minRawScrub is the shortest suspect that is removed from messages where
// it appears unquoted; shorter ones are removed only in quoted form, so that
// ordinary words of messages survive.
const minRawScrub = 8

// scrub removes from an error every string of the document that was found
// to be a secret, and every word (a run of printable ASCII) that contains a
// token or a random-looking part. The
// checks that produce messages already avoid quoting such values; this is
// the last line of defence (plugin validators quote values).
func (p *parser) scrub(e Error) Error {
	if len(p.suspectOrder) != len(p.suspects) {
		// Longest first, so that a suspect inside another does not leave
		// the rest of the longer one; in a fixed order, so that messages
		// do not depend on map iteration.
		p.suspectOrder = slices.SortedFunc(maps.Keys(p.suspects), func(a, b string) int {
			return cmp.Or(cmp.Compare(len(b), len(a)), strings.Compare(a, b))
		})
	}
	clean := func(s string) string {
		for _, v := range p.suspectOrder {
			q := strconv.Quote(v)
			s = strings.ReplaceAll(s, q, secret.Redacted)
			if inner := q[1 : len(q)-1]; len(inner) >= minRawScrub {
				s = strings.ReplaceAll(s, inner, secret.Redacted)
			}
			if len(v) >= minRawScrub {
				s = strings.ReplaceAll(s, v, secret.Redacted)
			}
		}
		return printableRun.ReplaceAllStringFunc(s, func(w string) string {
			if looksSecret(w) {
				return secret.Redacted
			}
			return w
		})
	}
	e.Field = clean(e.Field)
	e.Msg = clean(e.Msg)
	return e
}
