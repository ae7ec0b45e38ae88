package scan

import (
	"bytes"
	"path/filepath"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/rotatorhq/rotator/internal/secret"
)

// doc is one file under analysis.
type doc struct {
	path  string // as reported
	base  string // lower-case base name
	ext   string // lower-case extension with the dot
	b     []byte
	s     string // b as a string, sliced for lines without copies
	lower []byte
	lines []int // byte offset of each line's start
	// mcp: the file is an MCP client configuration.
	mcp bool
	// code: a source file, where only quoted literals are values.
	code     bool
	findings map[int]Finding // by byte offset of the value
	// hits are the lines of each keyword (indexKeywords).
	hits [][]int
	// ignored lines carry the rotator:ignore marker.
	ignored map[int]bool
}

// ignoreMarker on a line suppresses the findings of that line, and of the
// next one when the marker stands alone in a comment (test fixtures that
// must hold a token-shaped value).
const ignoreMarker = "rotator:ignore"

var codeExts = map[string]bool{
	".go": true, ".js": true, ".mjs": true, ".cjs": true, ".ts": true, ".tsx": true, ".jsx": true, ".mts": true,
	".py": true, ".java": true, ".kt": true, ".rb": true, ".php": true, ".cs": true, ".rs": true, ".swift": true,
	".scala": true, ".cfm": true, ".cfc": true, ".cfml": true, ".c": true, ".h": true, ".cpp": true, ".lua": true,
}

func newDoc(path string, b []byte) *doc {
	d := &doc{path: path, b: b, s: string(b), lower: bytes.ToLower(b), findings: map[int]Finding{}}
	d.base = strings.ToLower(filepath.Base(path))
	d.ext = strings.ToLower(filepath.Ext(path))
	d.code = codeExts[d.ext]
	d.lines = append(d.lines, 0)
	for i, c := range b {
		if c == '\n' {
			d.lines = append(d.lines, i+1)
		}
	}
	if bytes.Contains(d.lower, []byte(ignoreMarker)) {
		d.ignored = map[int]bool{}
		for i := range d.lines {
			line := d.lineBytes(i)
			if !bytes.Contains(line, []byte(ignoreMarker)) {
				continue
			}
			d.ignored[i] = true
			// A marker alone in a comment covers the next line too.
			t := bytes.TrimSpace(line)
			if bytes.HasPrefix(t, []byte("//")) || bytes.HasPrefix(t, []byte("#")) || bytes.HasPrefix(t, []byte("<!--")) {
				d.ignored[i+1] = true
			}
		}
	}
	return d
}

// lineOf returns the 0-based line index of a byte offset.
func (d *doc) lineOf(off int) int {
	return sort.Search(len(d.lines), func(i int) bool { return d.lines[i] > off }) - 1
}

// pos returns the 1-based line and column (in characters) of off.
func (d *doc) pos(off int) (line, col int) {
	li := d.lineOf(off)
	return li + 1, utf8.RuneCount(d.b[d.lines[li]:off]) + 1
}

// line returns line i without its end of line, as a string.
func (d *doc) line(i int) string {
	end := len(d.s)
	if i+1 < len(d.lines) {
		end = d.lines[i+1]
	}
	return strings.TrimRight(d.s[d.lines[i]:end], "\r\n")
}

// lineBytes returns line i without its end of line.
func (d *doc) lineBytes(i int) []byte {
	end := len(d.b)
	if i+1 < len(d.lines) {
		end = d.lines[i+1]
	}
	return bytes.TrimRight(d.b[d.lines[i]:end], "\r\n")
}

// kind is the finding kind for a literal secret in this file.
func (d *doc) kind() string {
	if d.mcp {
		return KindMCPConfig
	}
	return KindFile
}

// add records a finding for the secret value at byte offset off. At one
// offset the finding of higher priority wins; a finding from the
// structured pass (with a server) keeps its context.
func (d *doc) add(off int, r *secret.Rule, value string, f Finding) {
	if d.ignored[d.lineOf(off)] {
		return
	}
	f.Rule, f.Severity, f.Description = r.ID, r.Severity, r.Description
	f.value, f.off = value, off
	f.prio += rulePrio(r)
	if f.Kind == "" {
		f.Kind = d.kind()
	}
	if old, ok := d.findings[off]; ok {
		if old.Server != "" && f.Server == "" {
			if rulePrio(r) > rulePrio(secret.RuleByID(old.Rule)) {
				old.Rule, old.Severity, old.Description = f.Rule, f.Severity, f.Description
				d.findings[off] = old
			}
			return
		}
		if f.Server == "" && old.prio >= f.prio {
			return
		}
		if f.Server != "" && old.Server == "" && rulePrio(secret.RuleByID(old.Rule)) > rulePrio(r) {
			f.Rule, f.Severity, f.Description = old.Rule, old.Severity, old.Description
		}
	}
	d.findings[off] = f
}

func rulePrio(r *secret.Rule) int {
	if r == nil {
		return 0
	}
	switch r.Kind {
	case secret.RuleToken:
		return 3
	case secret.RuleURL:
		return 2
	}
	return 1
}

// result returns the findings in file order, with positions, previews,
// fixes and fingerprints.
func (d *doc) result() []Finding {
	out := make([]Finding, 0, len(d.findings))
	for _, f := range d.findings {
		f.File = d.path
		f.Line, f.Column = d.pos(f.off)
		if f.Kind == KindToolInput {
			f.Preview = "input " + f.Name
		} else {
			f.Preview = Mask(f.value)
		}
		if f.Fix == "" {
			f.Fix = fixFor(f.Kind, f.Server, f.Name, f.remote)
		}
		f.Fingerprint = fingerprint(f.Rule, filepath.ToSlash(d.path), f.value+"\x00"+f.Name)
		out = append(out, f)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].off < out[j].off })
	return out
}

// keywordLines calls fn with each line index holding one of the keywords
// (lower-case), once per line, in order.
func (d *doc) keywordLines(keywords []string, fn func(li int)) {
	if d.hits == nil {
		d.hits = indexKeywords(d.lower)
	}
	var lines []int
	for _, k := range keywords {
		lines = append(lines, d.hits[keywordID[k]]...)
	}
	if len(keywords) > 1 {
		sort.Ints(lines)
	}
	seen := -1
	for _, li := range lines {
		if li != seen {
			fn(li)
			seen = li
		}
	}
}

// hasAny reports whether the file holds one of the keywords.
func (d *doc) hasAny(keywords []string) bool {
	if d.hits == nil {
		d.hits = indexKeywords(d.lower)
	}
	for _, k := range keywords {
		if len(d.hits[keywordID[k]]) > 0 {
			return true
		}
	}
	return false
}
