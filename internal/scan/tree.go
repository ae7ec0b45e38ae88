package scan

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"go.yaml.in/yaml/v3"
)

// parseTree parses a JSON, YAML or TOML file into a jnode tree with byte
// offsets; nil when the file is none of these or does not parse.
func (d *doc) parseTree() *jnode {
	switch d.ext {
	case ".json", ".jsonc", ".json5":
		n, err := parseJSONC(d.b)
		if err != nil {
			return nil
		}
		return n
	case ".yaml", ".yml":
		return d.parseYAML()
	case ".toml":
		return d.parseTOML()
	}
	return nil
}

func (d *doc) parseYAML() (n *jnode) {
	defer func() {
		if recover() != nil { // yaml.v3 has panicked on hostile input before
			n = nil
		}
	}()
	var root yaml.Node
	if err := yaml.Unmarshal(d.b, &root); err != nil || len(root.Content) == 0 {
		return nil
	}
	return d.fromYAML(root.Content[0], 0)
}

// offsetOf maps a YAML line and column (1-based, in characters) to a byte
// offset.
func (d *doc) offsetOf(line, col int) int {
	if line < 1 || line > len(d.lines) {
		return 0
	}
	off := d.lines[line-1]
	for i := 1; i < col && off < len(d.b) && d.b[off] != '\n'; i++ {
		_, sz := utf8.DecodeRune(d.b[off:])
		off += sz
	}
	return off
}

func (d *doc) fromYAML(y *yaml.Node, depth int) *jnode {
	if depth > maxJSONDepth {
		return &jnode{kind: 'z'}
	}
	start := d.offsetOf(y.Line, y.Column)
	switch y.Kind {
	case yaml.MappingNode:
		n := &jnode{kind: 'o', start: start}
		for i := 0; i+1 < len(y.Content); i += 2 {
			k, v := y.Content[i], y.Content[i+1]
			ks := d.offsetOf(k.Line, k.Column)
			if ks < len(d.b) && (d.b[ks] == '"' || d.b[ks] == '\'') {
				// keyStart points at a quote in JSON; keep that shape.
			} else if ks > 0 {
				ks-- // so that keyStart+1 is the name, as in JSON
			}
			n.members = append(n.members, jmember{key: k.Value, keyStart: ks, val: d.fromYAML(v, depth+1)})
		}
		return n
	case yaml.SequenceNode:
		n := &jnode{kind: 'a', start: start}
		for _, c := range y.Content {
			n.items = append(n.items, d.fromYAML(c, depth+1))
		}
		return n
	case yaml.ScalarNode:
		k := byte('s')
		switch y.Tag {
		case "!!bool":
			k = 'b'
		case "!!int", "!!float":
			k = 'n'
		case "!!null":
			k = 'z'
		}
		return &jnode{kind: k, start: start, end: start + len(y.Value), str: y.Value}
	}
	return &jnode{kind: 'z', start: start}
}

// parseTOML reads the part of TOML that configurations use: tables
// ([a.b], [[a]]), key = value with dotted keys, strings, numbers, booleans,
// arrays and inline tables. Anything else ends the parse with what was read.
func (d *doc) parseTOML() *jnode {
	root := &jnode{kind: 'o'}
	cur := root
	p := &tparser{b: d.b}
	for p.i < len(p.b) {
		p.skipSpaceLines()
		if p.i >= len(p.b) {
			break
		}
		switch p.b[p.i] {
		case '[':
			arr := p.i+1 < len(p.b) && p.b[p.i+1] == '['
			if arr {
				p.i += 2
			} else {
				p.i++
			}
			keys, ok := p.keyPath(']')
			if !ok {
				return root
			}
			if arr {
				if p.i >= len(p.b) || p.b[p.i] != ']' {
					return root
				}
				p.i++
			}
			parent := root.path(keys[:len(keys)-1], p.i)
			last := keys[len(keys)-1]
			if arr {
				a := parent.get(last.key)
				if a == nil {
					a = &jnode{kind: 'a', start: last.start}
					parent.members = append(parent.members, jmember{key: last.key, keyStart: last.start - 1, val: a})
				}
				obj := &jnode{kind: 'o', start: p.i}
				a.items = append(a.items, obj)
				cur = obj
			} else {
				cur = parent.path(keys[len(keys)-1:], last.start)
			}
			p.toEOL()
		default:
			keys, ok := p.keyPath('=')
			if !ok {
				return root
			}
			v, ok := p.value(0)
			if !ok {
				return root
			}
			parent := cur.path(keys[:len(keys)-1], p.i)
			last := keys[len(keys)-1]
			parent.members = append(parent.members, jmember{key: last.key, keyStart: last.start - 1, val: v})
			p.toEOL()
		}
	}
	return root
}

type tkey struct {
	key   string
	start int
}

// path returns the object at keys below n, creating it.
func (n *jnode) path(keys []tkey, at int) *jnode {
	cur := n
	for _, k := range keys {
		next := cur.get(k.key)
		if next == nil {
			next = &jnode{kind: 'o', start: at}
			cur.members = append(cur.members, jmember{key: k.key, keyStart: k.start - 1, val: next})
		}
		if next.kind == 'a' && len(next.items) > 0 {
			next = next.items[len(next.items)-1]
		}
		if next.kind != 'o' {
			return &jnode{kind: 'o'}
		}
		cur = next
	}
	return cur
}

type tparser struct {
	b []byte
	i int
}

func (p *tparser) skipSpaceLines() {
	for p.i < len(p.b) {
		switch p.b[p.i] {
		case ' ', '\t', '\r', '\n':
			p.i++
		case '#':
			p.toEOL()
		default:
			return
		}
	}
}

func (p *tparser) spaces() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t') {
		p.i++
	}
}

func (p *tparser) toEOL() {
	for p.i < len(p.b) && p.b[p.i] != '\n' {
		p.i++
	}
}

// keyPath reads a dotted key up to end ('=' or ']') and consumes end.
func (p *tparser) keyPath(end byte) ([]tkey, bool) {
	var keys []tkey
	for {
		p.spaces()
		if p.i >= len(p.b) {
			return nil, false
		}
		start := p.i
		var k string
		switch p.b[p.i] {
		case '"', '\'':
			s, ok := p.str()
			if !ok {
				return nil, false
			}
			k = s
			start++
		default:
			for p.i < len(p.b) && (isWordByte(p.b[p.i]) || p.b[p.i] == '-') {
				p.i++
			}
			k = string(p.b[start:p.i])
			if k == "" {
				return nil, false
			}
		}
		keys = append(keys, tkey{k, start})
		p.spaces()
		if p.i >= len(p.b) {
			return nil, false
		}
		if p.b[p.i] == '.' {
			p.i++
			continue
		}
		if p.b[p.i] == end {
			p.i++
			return keys, true
		}
		return nil, false
	}
}

func isWordByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// str reads a basic or literal string (single-line or multi-line).
func (p *tparser) str() (string, bool) {
	q := p.b[p.i]
	if bytes.HasPrefix(p.b[p.i:], []byte{q, q, q}) {
		p.i += 3
		end := bytes.Index(p.b[p.i:], []byte{q, q, q})
		if end < 0 {
			return "", false
		}
		s := string(p.b[p.i : p.i+end])
		p.i += end + 3
		return strings.TrimPrefix(s, "\n"), true
	}
	p.i++
	start := p.i
	esc := false
	for p.i < len(p.b) && p.b[p.i] != '\n' {
		c := p.b[p.i]
		if q == '"' && c == '\\' {
			esc = true
			p.i += 2
			continue
		}
		if c == q {
			raw := p.b[start:p.i]
			p.i++
			if esc {
				s, err := unescapeJSON(raw)
				if err != nil {
					return string(raw), true
				}
				return s, true
			}
			return string(raw), true
		}
		p.i++
	}
	return "", false
}

func (p *tparser) value(depth int) (*jnode, bool) {
	if depth > maxJSONDepth {
		return nil, false
	}
	p.spaces()
	if p.i >= len(p.b) {
		return nil, false
	}
	start := p.i
	switch c := p.b[p.i]; c {
	case '"', '\'':
		s, ok := p.str()
		return &jnode{kind: 's', start: start, end: p.i, str: s}, ok
	case '[':
		p.i++
		n := &jnode{kind: 'a', start: start}
		for {
			p.skipSpaceLines()
			if p.i >= len(p.b) {
				return nil, false
			}
			if p.b[p.i] == ']' {
				p.i++
				n.end = p.i
				return n, true
			}
			v, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			n.items = append(n.items, v)
			p.skipSpaceLines()
			if p.i < len(p.b) && p.b[p.i] == ',' {
				p.i++
			}
		}
	case '{':
		p.i++
		n := &jnode{kind: 'o', start: start}
		for {
			p.spaces()
			if p.i >= len(p.b) {
				return nil, false
			}
			if p.b[p.i] == '}' {
				p.i++
				n.end = p.i
				return n, true
			}
			keys, ok := p.keyPath('=')
			if !ok {
				return nil, false
			}
			v, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			parent := n.path(keys[:len(keys)-1], p.i)
			last := keys[len(keys)-1]
			parent.members = append(parent.members, jmember{key: last.key, keyStart: last.start - 1, val: v})
			p.spaces()
			if p.i < len(p.b) && p.b[p.i] == ',' {
				p.i++
			}
		}
	default:
		for p.i < len(p.b) && !strings.ContainsRune(" \t\r\n,]}#", rune(p.b[p.i])) {
			p.i++
		}
		w := string(p.b[start:p.i])
		if w == "" {
			return nil, false
		}
		k := byte('n')
		if w == "true" || w == "false" {
			k = 'b'
		}
		return &jnode{kind: k, start: start, end: p.i, str: w}, true
	}
}
