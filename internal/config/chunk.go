package config

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"slices"

	"go.yaml.in/yaml/v3"
)

// Large inventories are parsed one credential at a time. yaml.v3 builds the
// node tree of a whole document before anything can look at it, about 40
// times the size of the text (1 GB for 100,000 credentials); parsing the
// credentials: list item by item keeps one item's tree at a time.
//
// The split is by indentation, which is what delimits the items of a block
// sequence: the document is cut where a line at the sequence's indentation
// starts with "- ". Where the text is anything but the plain block layout
// this understands (flow style, a tab in an indentation, directives or
// document markers, a second credentials key, an alias to an anchor in
// another part), some part fails to parse on its own or is not one item,
// and Parse parses the whole document instead, so the result is always the
// whole document's (FuzzParse compares the two).

// chunk is one item of the credentials list: the bytes [start, end) of
// the text, whose first line is line.
type chunk struct {
	start, end int64
	line       int
}

// split is a document cut into its credential items and the rest.
type split struct {
	// skeleton is the document with every item's text replaced by as many
	// newlines, so that lines keep their numbers and credentials: is empty.
	skeleton []byte
	// keyLine is the line of the credentials: key.
	keyLine int
	items   []chunk
}

// splitCredentials reads the text once and finds the items of a top-level
// block sequence under credentials:. ok is false when the document is not
// laid out that way (or cannot be read).
func splitCredentials(src *io.SectionReader) (s split, ok bool) {
	const (
		before = iota
		afterKey
		inList
		after
	)
	state := before
	indent := -1
	r := bufio.NewReaderSize(io.NewSectionReader(src, 0, src.Size()), 64<<10)
	var long []byte // a line longer than r's buffer
	line := 0
	for off := int64(0); ; {
		raw, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], raw...)
			for errors.Is(err, bufio.ErrBufferFull) {
				raw, err = r.ReadSlice('\n')
				long = append(long, raw...)
			}
			raw = long
		}
		if len(raw) == 0 {
			if errors.Is(err, io.EOF) {
				break
			}
			return split{}, false
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return split{}, false
		}
		line++
		next := off + int64(len(raw))
		text := bytes.TrimRight(raw, "\r\n")
		lead := len(text) - len(bytes.TrimLeft(text, " \t"))
		body := text[lead:]
		blank := len(body) == 0 || body[0] == '#'
		if lead == 0 && (bytes.HasPrefix(text, []byte("---")) || bytes.HasPrefix(text, []byte("...")) || bytes.HasPrefix(text, []byte("%"))) {
			return split{}, false // directives and document markers
		}
		if !blank && bytes.ContainsRune(text[:lead], '\t') {
			return split{}, false
		}
		top := !blank && lead == 0
		if top && state != inList && isCredentialsKey(text) {
			if state != before {
				return split{}, false // a second credentials key
			}
			state, s.keyLine = afterKey, line
		} else {
			switch state {
			case afterKey:
				if blank {
					break
				}
				if !isItem(body) {
					return split{}, false // not a block sequence (or empty)
				}
				state, indent = inList, lead
				s.items = append(s.items, chunk{start: off, line: line})
			case inList:
				switch {
				case blank || lead > indent:
				case lead == indent && isItem(body):
					s.items[len(s.items)-1].end = off
					s.items = append(s.items, chunk{start: off, line: line})
				case lead == 0:
					state = after
					s.items[len(s.items)-1].end = off
				default:
					return split{}, false
				}
			}
		}
		if state == inList {
			s.skeleton = append(s.skeleton, '\n') // an item's line, blanked
		} else {
			s.skeleton = append(s.skeleton, raw...)
		}
		off = next
		if errors.Is(err, io.EOF) {
			break
		}
	}
	switch state {
	case inList:
		s.items[len(s.items)-1].end = src.Size()
	case after:
	default:
		return split{}, false
	}
	return s, true
}

// isCredentialsKey reports whether a line is "credentials:" alone, maybe
// with trailing spaces and a comment.
func isCredentialsKey(text []byte) bool {
	rest, ok := bytes.CutPrefix(text, []byte("credentials:"))
	if !ok {
		return false
	}
	rest = bytes.TrimLeft(rest, " \t")
	return len(rest) == 0 || rest[0] == '#'
}

// isItem reports whether a line's text (after its indentation) starts a
// block sequence item.
func isItem(body []byte) bool {
	return len(body) > 0 && body[0] == '-' && (len(body) == 1 || body[1] == ' ' || body[1] == '\r')
}

// errNotSplit says a part of a split document must be parsed with the rest.
var errNotSplit = errors.New("parse the whole document")

// decodeItem parses one item's text on its own: it must be a sequence of
// exactly one item, which is returned with every line numbered as in the
// whole document. Any YAML error returns errNotSplit: the whole document
// reports it, with the context it needs.
func decodeItem(text []byte, c chunk) (item *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			item, err = nil, errNotSplit
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(text))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		return nil, errNotSplit
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errNotSplit
	}
	if len(doc.Content) != 1 {
		return nil, errNotSplit
	}
	seq := doc.Content[0]
	if seq.Kind != yaml.SequenceNode || len(seq.Content) != 1 || seq.Anchor != "" || seq.Tag != "!!seq" {
		return nil, errNotSplit
	}
	item = seq.Content[0]
	renumber(item, c.line-1)
	return item, nil
}

// renumber adds delta to the line of n and of every node below it.
func renumber(n *yaml.Node, delta int) {
	n.Line += delta
	for _, c := range n.Content {
		renumber(c, delta)
	}
}

// parseSplit parses a document split by splitCredentials: the skeleton as a
// whole, then the credentials one item at a time, each item's node tree
// released before the next is read. ok is false (and p must be discarded)
// when the document must be parsed as a whole instead.
func (p *parser) parseSplit(src *io.SectionReader) (cfg *Config, ok bool) {
	s, ok := splitCredentials(src)
	if !ok {
		return nil, false
	}
	doc, ok := p.decode(s.skeleton)
	if !ok || len(p.errs) > 0 || len(doc.Content) != 1 {
		return nil, false
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode || !emptyCredentialsKey(root, s.keyLine) {
		return nil, false
	}
	s.skeleton = nil
	cfg = &Config{File: p.file, Providers: map[string]Provider{}, Targets: map[string]Target{}}
	p.scanSecrets(root)
	p.topLevel(cfg, root)
	cfg.Credentials = make([]Credential, 0, len(s.items))
	firstID := make(map[string]int, len(s.items))
	var text []byte
	for i, c := range s.items {
		text = slices.Grow(text[:0], int(c.end-c.start))[:c.end-c.start]
		if _, err := src.ReadAt(text, c.start); err != nil {
			return nil, false
		}
		item, err := decodeItem(text, c)
		if err != nil {
			return nil, false
		}
		path := index("credentials", i)
		p.scanCredential(item, path)
		p.credentialItem(cfg, item, i, firstID)
	}
	p.credentialRefs(cfg)
	p.unused(cfg)
	return cfg, true
}

// emptyCredentialsKey reports whether the root mapping of a skeleton has
// exactly one credentials key, the one at line, with an empty value, and
// no merge key that could bring another.
func emptyCredentialsKey(root *yaml.Node, line int) bool {
	found := 0
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == "!!merge" || k.Value == "<<" {
			return false
		}
		if k.Value != "credentials" {
			continue
		}
		found++
		if k.Line != line || k.Style != 0 || v.Kind != yaml.ScalarNode || v.Tag != "!!null" || v.Value != "" {
			return false
		}
	}
	return found == 1
}
