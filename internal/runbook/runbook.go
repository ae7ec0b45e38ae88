// Package runbook resolves the runbook references of credentials
// ("runbooks/postgres-role.md#rotation") to a file, an anchor inside it and
// the digest of its content, so that each run records exactly which runbook
// text it followed (DESIGN.md §2.5).
package runbook

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode"

	"go.yaml.in/yaml/v3"
)

// Sentinel errors, wrapped by Resolve and FrontMatter.
var (
	// ErrNotFound is returned when the runbook file does not exist.
	ErrNotFound = errors.New("runbook not found")
	// ErrAnchorNotFound is returned when the file has no such anchor.
	ErrAnchorNotFound = errors.New("runbook anchor not found")
	// ErrFrontMatter is returned when a front matter block is malformed.
	ErrFrontMatter = errors.New("invalid runbook front matter")
)

const (
	// maxListedAnchors caps how many existing anchors an error lists.
	maxListedAnchors = 10
	// MaxSize is the largest runbook Resolve reads: far more than any
	// runbook needs, small enough that a wrong path cannot exhaust memory.
	MaxSize = 8 << 20
)

// Ref is a resolved runbook reference.
type Ref struct {
	// Path is the file part of the reference as written ("runbooks/x.md").
	Path string
	// File is the absolute path of the file that was found.
	File string
	// Anchor is the part after '#', empty when the reference has none.
	Anchor string
	// Digest is "sha256:" followed by the hex SHA-256 of the file content.
	Digest string
}

// String returns the reference as written: Path, and "#"+Anchor if any.
func (r Ref) String() string {
	if r.Anchor == "" {
		return r.Path
	}
	return r.Path + "#" + r.Anchor
}

// Split splits a reference "path/to/file.md#anchor" into its path and its
// anchor (empty when there is no '#').
func Split(ref string) (path, anchor string) {
	path, anchor, _ = strings.Cut(ref, "#")
	return path, anchor
}

// Resolve finds the runbook a reference names, checks that its anchor
// exists, and digests its content.
//
// An absolute path is used as is. A relative path is looked up in baseDir
// first, then in each parent of baseDir up to the file system root, and the
// first existing file wins: a config file in examples/ that names
// runbooks/generated.md finds the repository's runbooks/ directory, while a
// runbooks/ directory beside the config file takes precedence.
func Resolve(baseDir, ref string) (Ref, error) {
	path, anchor := Split(ref)
	r := Ref{Path: path, Anchor: anchor}
	if strings.TrimSpace(path) == "" {
		return r, fmt.Errorf("%w: empty path in runbook reference; write it as runbooks/name.md#anchor", ErrNotFound)
	}
	file, err := find(baseDir, path)
	if err != nil {
		return r, err
	}
	data, err := readLimited(file)
	if err != nil {
		return r, err
	}
	r.File = file
	r.Digest = Digest(data)
	if anchor != "" {
		anchors := Anchors(data)
		if !slices.Contains(anchors, anchor) {
			return r, anchorError(file, anchor, anchors)
		}
	}
	return r, nil
}

// Digest returns "sha256:" followed by the hex SHA-256 of content.
func Digest(content []byte) string {
	sum := sha256.Sum256(content)
	return "sha256:" + hex.EncodeToString(sum[:])
}

// find returns the absolute path of the first existing regular file named
// path in baseDir or one of its parents.
func find(baseDir, path string) (string, error) {
	if filepath.IsAbs(path) {
		if isFile(path) {
			return filepath.Clean(path), nil
		}
		return "", fmt.Errorf("%w: %s does not exist or is not a file", ErrNotFound, path)
	}
	base, err := filepath.Abs(baseDir)
	if err != nil {
		return "", fmt.Errorf("runbook %s: resolving base directory: %w", path, err)
	}
	for dir := base; ; {
		candidate := filepath.Join(dir, path)
		if isFile(candidate) {
			return candidate, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", fmt.Errorf("%w: looked for %s in %s and each of its parent directories", ErrNotFound, path, base)
}

func readLimited(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("reading runbook %s: %w", file, err)
	}
	defer func() { _ = f.Close() }() // read-only: nothing to flush
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading runbook %s: %w", file, err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("runbook %s is larger than %d MiB; is it the right file?", file, MaxSize>>20)
	}
	return data, nil
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

func anchorError(file, anchor string, anchors []string) error {
	if len(anchors) == 0 {
		return fmt.Errorf("%w: %s has no heading or anchor, so #%s does not exist", ErrAnchorNotFound, file, anchor)
	}
	listed := anchors
	more := ""
	if len(listed) > maxListedAnchors {
		listed = listed[:maxListedAnchors]
		more = fmt.Sprintf(" (and %d more)", len(anchors)-maxListedAnchors)
	}
	hint := ""
	for _, a := range anchors {
		if strings.EqualFold(a, anchor) || a == Slug(anchor) {
			hint = fmt.Sprintf("; did you mean #%s?", a)
			break
		}
	}
	return fmt.Errorf("%w: %s has no anchor #%s; anchors are %s%s%s", ErrAnchorNotFound, file, anchor,
		strings.Join(listed, ", "), more, hint)
}

var (
	atxHeading   = regexp.MustCompile(`^ {0,3}(#{1,6})(?:[ \t]+(.*?))?[ \t]*$`)
	atxClosing   = regexp.MustCompile(`(?:^|[ \t]+)#+$`)
	setextLine   = regexp.MustCompile(`^ {0,3}(?:=+|-+)[ \t]*$`)
	fenceOpen    = regexp.MustCompile("^ {0,3}(`{3,}|~{3,})")
	headingID    = regexp.MustCompile(`[ \t]*\{#([^}\s]+)[^}]*\}[ \t]*$`)
	htmlAnchor   = regexp.MustCompile(`(?i)<a\b[^>]*>`)
	anchorAttr   = regexp.MustCompile(`(?i)\b(?:id|name)\s*=\s*(?:"([^"]*)"|'([^']*)')`)
	inlineImage  = regexp.MustCompile(`!\[([^\]]*)\]\([^)]*\)`)
	inlineLink   = regexp.MustCompile(`\[([^\]]*)\]\([^)]*\)`)
	htmlTag      = regexp.MustCompile(`</?[A-Za-z][^>]*>`)
	underscoreEm = regexp.MustCompile(`(^|[^\pL\pN_])_{1,2}([^_\s](?:[^_]*[^_\s])?)_{1,2}($|[^\pL\pN_])`)
)

// Anchors returns the anchors a markdown document defines, in document
// order and without duplicates: the GitHub-style slug of every heading
// (ATX "## Title" and setext; lower-cased, spaces turned into '-',
// punctuation dropped, a repeated slug suffixed -1, -2, ...), explicit
// heading ids ("## Title {#id}"), and <a id="x"> / <a name="x"> anchors.
// Headings inside fenced code blocks and the front matter are ignored.
func Anchors(markdown []byte) []string {
	var (
		out   []string
		seen  = map[string]bool{}
		slugs = map[string]int{}
	)
	add := func(a string) {
		if a != "" && !seen[a] {
			seen[a] = true
			out = append(out, a)
		}
	}
	heading := func(text string) {
		if m := headingID.FindStringSubmatchIndex(text); m != nil {
			add(text[m[2]:m[3]])
			text = text[:m[0]]
		}
		add(uniqueSlug(Slug(headingText(text)), slugs))
	}
	lines := strings.Split(string(bytes.ReplaceAll(markdown, []byte("\r\n"), []byte("\n"))), "\n")
	lines = lines[frontMatterLines(lines):]
	fence := ""
	prev := "" // the previous line, if it may be the text of a setext heading
	for _, line := range lines {
		if fence != "" {
			if t := strings.TrimLeft(line, " "); strings.HasPrefix(t, fence) && strings.Trim(t, fence[:1]+" \t") == "" {
				fence = ""
			}
			continue
		}
		if m := fenceOpen.FindStringSubmatch(line); m != nil {
			fence, prev = m[1], ""
			continue
		}
		for _, tag := range htmlAnchor.FindAllString(line, -1) {
			for _, a := range anchorAttr.FindAllStringSubmatch(tag, -1) {
				add(a[1] + a[2])
			}
		}
		if m := atxHeading.FindStringSubmatch(line); m != nil {
			heading(atxClosing.ReplaceAllString(m[2], ""))
			prev = ""
			continue
		}
		if prev != "" && setextLine.MatchString(line) {
			heading(strings.TrimSpace(prev))
			prev = ""
			continue
		}
		prev = ""
		if t := strings.TrimSpace(line); t != "" && maySetext(t) && !strings.HasPrefix(line, "    ") {
			prev = line
		}
	}
	return out
}

// maySetext reports whether a line can be the text of a setext heading
// (not a list item, quote, table row or HTML block).
func maySetext(t string) bool {
	switch t[0] {
	case '-', '*', '+', '>', '|', '<':
		return false
	}
	i := strings.IndexFunc(t, func(r rune) bool { return r < '0' || r > '9' })
	return i <= 0 || (t[i] != '.' && t[i] != ')')
}

// headingText approximates the text GitHub renders for a heading's inline
// markdown: link and image text, no HTML tags, no emphasis underscores.
func headingText(s string) string {
	s = inlineImage.ReplaceAllString(s, "$1")
	s = inlineLink.ReplaceAllString(s, "$1")
	s = htmlTag.ReplaceAllString(s, "")
	for {
		t := underscoreEm.ReplaceAllString(s, "$1$2$3")
		if t == s {
			return s
		}
		s = t
	}
}

// Slug returns the GitHub-style anchor of a heading text: lower-case,
// letters, digits, '-' and '_' kept, each space turned into '-', everything
// else dropped.
func Slug(text string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(text)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.Is(unicode.Mn, r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// uniqueSlug returns slug, or slug-1, slug-2, ... when it was used before,
// as GitHub does for repeated headings.
func uniqueSlug(slug string, used map[string]int) string {
	if slug == "" {
		return ""
	}
	s := slug
	for {
		n, taken := used[s]
		if !taken {
			used[s] = 0
			return s
		}
		used[s] = n + 1
		s = fmt.Sprintf("%s-%d", slug, n+1)
	}
}

// frontMatterLines returns how many leading lines are a front matter block
// ("---" ... "---" or "..."), or 0 when there is none or it is unterminated.
func frontMatterLines(lines []string) int {
	if len(lines) == 0 || strings.TrimRight(strings.TrimPrefix(lines[0], "\uFEFF"), " \t") != "---" {
		return 0
	}
	for i := 1; i < len(lines); i++ {
		if t := strings.TrimRight(lines[i], " \t"); t == "---" || t == "..." {
			return i + 1
		}
	}
	return 0
}

// FrontMatter parses the YAML block that opens a markdown document between
// two "---" lines (the closing one may also be "..."), such as
//
//	---
//	id: postgres-role
//	version: 3
//	owner: platform-team
//	reviewed: 2025-01-15
//	---
//
// Scalar values are returned as written; a list of scalars is joined with
// ", ". It returns nil and no error when the document has no front matter,
// and an error wrapping ErrFrontMatter when the block is unterminated, is not
// a mapping, or holds a nested mapping.
func FrontMatter(markdown []byte) (map[string]string, error) {
	lines := strings.Split(string(bytes.ReplaceAll(markdown, []byte("\r\n"), []byte("\n"))), "\n")
	if len(lines) == 0 || strings.TrimRight(strings.TrimPrefix(lines[0], "\uFEFF"), " \t") != "---" {
		return nil, nil
	}
	n := frontMatterLines(lines)
	if n == 0 {
		return nil, fmt.Errorf("%w: no closing --- line", ErrFrontMatter)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal([]byte(strings.Join(lines[1:n-1], "\n")), &doc); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFrontMatter, err)
	}
	out := map[string]string{}
	if len(doc.Content) == 0 {
		return out, nil
	}
	m := doc.Content[0]
	if m.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("%w: line %d: must be a mapping of key: value", ErrFrontMatter, m.Line+1)
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		switch v.Kind {
		case yaml.ScalarNode:
			if v.Tag != "!!null" {
				out[k.Value] = v.Value
			}
		case yaml.SequenceNode:
			items := make([]string, 0, len(v.Content))
			for _, e := range v.Content {
				if e.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("%w: line %d: %s: list items must be plain values", ErrFrontMatter, e.Line+1, k.Value)
				}
				items = append(items, e.Value)
			}
			out[k.Value] = strings.Join(items, ", ")
		default:
			return nil, fmt.Errorf("%w: line %d: %s: must be a value or a list of values", ErrFrontMatter, v.Line+1, k.Value)
		}
	}
	return out, nil
}
