package scan

import (
	"errors"
	"fmt"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// jnode is one value of a JSON (or JSONC: comments and trailing commas, as
// VS Code, Zed and Cursor accept) document, with its byte offsets, so that
// findings have positions and Fix can edit the file in place.
type jnode struct {
	kind       byte // 'o' object, 'a' array, 's' string, 'n' number, 'b' bool, 'z' null
	start, end int  // the value's bytes, quotes included
	str        string
	members    []jmember
	items      []*jnode
	// isMCPSection marks VS Code's "mcp" settings object.
	isMCPSection bool
}

type jmember struct {
	key      string
	keyStart int
	val      *jnode
}

// get returns the member value named key, or nil.
func (n *jnode) get(key string) *jnode {
	if n == nil || n.kind != 'o' {
		return nil
	}
	for _, m := range n.members {
		if m.key == key {
			return m.val
		}
	}
	return nil
}

// member returns the member named key, or nil.
func (n *jnode) member(key string) *jmember {
	if n == nil || n.kind != 'o' {
		return nil
	}
	for i := range n.members {
		if n.members[i].key == key {
			return &n.members[i]
		}
	}
	return nil
}

// errJSON is returned for text that is not JSON; the scanner then treats
// the file line by line.
var errJSON = errors.New("not JSON")

const maxJSONDepth = 200

type jparser struct {
	b     []byte
	i     int
	depth int
}

// parseJSONC parses b as JSON with comments and trailing commas.
func parseJSONC(b []byte) (*jnode, error) {
	p := &jparser{b: b}
	if len(b) >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF {
		p.i = 3
	}
	n, err := p.value()
	if err != nil {
		return nil, err
	}
	if err := p.space(); err != nil {
		return nil, err
	}
	if p.i != len(b) {
		return nil, p.errf("text after the value")
	}
	return n, nil
}

func (p *jparser) errf(format string, args ...any) error {
	return fmt.Errorf("%w: offset %d: %s", errJSON, p.i, fmt.Sprintf(format, args...))
}

func (p *jparser) space() error {
	for p.i < len(p.b) {
		switch c := p.b[p.i]; {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			p.i++
		case c == '/' && p.i+1 < len(p.b) && p.b[p.i+1] == '/':
			for p.i < len(p.b) && p.b[p.i] != '\n' {
				p.i++
			}
		case c == '/' && p.i+1 < len(p.b) && p.b[p.i+1] == '*':
			end := -1
			for j := p.i + 2; j+1 < len(p.b); j++ {
				if p.b[j] == '*' && p.b[j+1] == '/' {
					end = j + 2
					break
				}
			}
			if end < 0 {
				return p.errf("unterminated comment")
			}
			p.i = end
		default:
			return nil
		}
	}
	return nil
}

func (p *jparser) value() (*jnode, error) {
	if err := p.space(); err != nil {
		return nil, err
	}
	if p.i >= len(p.b) {
		return nil, p.errf("unexpected end")
	}
	p.depth++
	defer func() { p.depth-- }()
	if p.depth > maxJSONDepth {
		return nil, p.errf("nested too deeply")
	}
	start := p.i
	switch c := p.b[p.i]; {
	case c == '{':
		n := &jnode{kind: 'o', start: start}
		p.i++
		for {
			if err := p.space(); err != nil {
				return nil, err
			}
			if p.i < len(p.b) && p.b[p.i] == '}' {
				p.i++
				n.end = p.i
				return n, nil
			}
			if p.i >= len(p.b) || p.b[p.i] != '"' {
				return nil, p.errf("want a member name")
			}
			ks := p.i
			k, err := p.str()
			if err != nil {
				return nil, err
			}
			if err := p.space(); err != nil {
				return nil, err
			}
			if p.i >= len(p.b) || p.b[p.i] != ':' {
				return nil, p.errf("want ':'")
			}
			p.i++
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			n.members = append(n.members, jmember{key: k, keyStart: ks, val: v})
			if err := p.space(); err != nil {
				return nil, err
			}
			if p.i < len(p.b) && p.b[p.i] == ',' {
				p.i++
				continue
			}
			if p.i < len(p.b) && p.b[p.i] == '}' {
				continue
			}
			return nil, p.errf("want ',' or '}'")
		}
	case c == '[':
		n := &jnode{kind: 'a', start: start}
		p.i++
		for {
			if err := p.space(); err != nil {
				return nil, err
			}
			if p.i < len(p.b) && p.b[p.i] == ']' {
				p.i++
				n.end = p.i
				return n, nil
			}
			v, err := p.value()
			if err != nil {
				return nil, err
			}
			n.items = append(n.items, v)
			if err := p.space(); err != nil {
				return nil, err
			}
			if p.i < len(p.b) && p.b[p.i] == ',' {
				p.i++
				continue
			}
			if p.i < len(p.b) && p.b[p.i] == ']' {
				continue
			}
			return nil, p.errf("want ',' or ']'")
		}
	case c == '"':
		s, err := p.str()
		if err != nil {
			return nil, err
		}
		return &jnode{kind: 's', start: start, end: p.i, str: s}, nil
	case c == 't' || c == 'f' || c == 'n':
		for _, w := range []string{"true", "false", "null"} {
			if len(p.b)-p.i >= len(w) && string(p.b[p.i:p.i+len(w)]) == w {
				p.i += len(w)
				k := byte('b')
				if w == "null" {
					k = 'z'
				}
				return &jnode{kind: k, start: start, end: p.i, str: w}, nil
			}
		}
		return nil, p.errf("unknown word")
	case c == '-' || c >= '0' && c <= '9':
		for p.i < len(p.b) && (p.b[p.i] == '-' || p.b[p.i] == '+' || p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E' || p.b[p.i] >= '0' && p.b[p.i] <= '9') {
			p.i++
		}
		return &jnode{kind: 'n', start: start, end: p.i, str: string(p.b[start:p.i])}, nil
	}
	return nil, p.errf("unexpected character %q", p.b[p.i])
}

// str reads a string at p.i (which is '"') and decodes it.
func (p *jparser) str() (string, error) {
	p.i++
	start := p.i
	plain := true
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			s := p.b[start:p.i]
			p.i++
			if plain {
				return string(s), nil
			}
			return unescapeJSON(s)
		case c == '\\':
			plain = false
			p.i += 2
		case c < 0x20:
			return "", p.errf("control character in a string")
		default:
			p.i++
		}
	}
	return "", p.errf("unterminated string")
}

func unescapeJSON(s []byte) (string, error) {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(s) {
			return "", fmt.Errorf("%w: bad escape", errJSON)
		}
		switch s[i] {
		case '"', '\\', '/':
			out = append(out, s[i])
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			if i+5 > len(s) {
				return "", fmt.Errorf("%w: bad \\u escape", errJSON)
			}
			v, err := strconv.ParseUint(string(s[i+1:i+5]), 16, 16)
			if err != nil {
				return "", fmt.Errorf("%w: bad \\u escape", errJSON)
			}
			r := rune(v)
			i += 4
			if utf16.IsSurrogate(r) && i+7 <= len(s) && s[i+1] == '\\' && s[i+2] == 'u' {
				if v2, err := strconv.ParseUint(string(s[i+3:i+7]), 16, 16); err == nil {
					r = utf16.DecodeRune(r, rune(v2))
					i += 6
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return "", fmt.Errorf("%w: bad escape", errJSON)
		}
	}
	return string(out), nil
}

// rawOffset maps an offset into a string node's decoded value to a byte
// offset in the file: exact when the string has no escapes, else the
// string's first character.
func (n *jnode) rawOffset(b []byte, i int) int {
	raw := b[n.start+1 : n.end-1]
	if len(raw) == len(n.str) {
		return n.start + 1 + i
	}
	return n.start + 1
}
