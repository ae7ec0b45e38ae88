package scan

import (
	"bytes"
	"regexp"
	"slices"
	"strings"
)

// The line pass finds, on each line, values of known formats anywhere and
// values under sensitive names in the ways files assign them:
//
//	KEY=value  export KEY="value"  key: value  "key": "value"  key = "value"
//	apiKey := "value"  $apiKey = 'value'  <cfset apiKey = "value">
//	Header.Set("Authorization", "Bearer value")  --token value  --api-key=value
//	<cfhttpparam type="header" name="Authorization" value="Bearer value">
var (
	attrRE = regexp.MustCompile(`(?i)\bname\s*=\s*["']([^"']+)["'][^>]*?\bvalue\s*=\s*("[^"]*"|'[^']*')`)
)

// sensitiveWords are the lower-case substrings that make a line worth the
// assignment regexps: every sensitive name holds one.
var sensitiveWords = []string{"secret", "token", "passw", "pwd", "key", "auth", "credential", "private", "dsn", "bearer", "cookie", "session", "pass", "pat", "salt"}

// linePass runs the token and url rules over the lines holding their
// keywords, and the assignment regexps over lines holding a sensitive word.
func (d *doc) linePass() {
	for _, r := range patternRules {
		if !d.hasAny(r.Keywords) {
			continue
		}
		d.keywordLines(r.Keywords, func(li int) {
			line := d.line(li)
			for _, m := range r.FindAll(line, true) {
				if r.ID == "private-key" && !pemBody(string(d.b[d.lines[li]+m.End:min(len(d.b), d.lines[li]+m.End+8192)])) {
					continue
				}
				d.add(d.lines[li]+m.SecretStart, r, line[m.SecretStart:m.SecretEnd], Finding{})
			}
		})
	}
	if !d.hasAny(sensitiveWords) {
		return
	}
	d.keywordLines(sensitiveWords, func(li int) {
		line := d.line(li)
		if len(line) > 8192 {
			line = line[:8192] // minified text: the token rules have seen it all
		}
		d.assignments(li, line)
	})
}

// assignments judges the name/value pairs of one line. It looks only
// around the sensitive words of the line: the name that holds one, then an
// operator (= : := =>) or a comma (a call's name/value pair) or a space
// after a flag, then the value.
func (d *doc) assignments(li int, line string) {
	base := d.lines[li]
	lower := d.lower[base : base+len(line)]
	try := func(name string, vs, ve int) {
		raw := line[vs:ve]
		quoted := len(raw) >= 2 && strings.ContainsRune(`"'`+"`", rune(raw[0])) && raw[len(raw)-1] == raw[0]
		if quoted {
			vs, ve = vs+1, ve-1
		} else if d.code {
			return // in source code an unquoted value is an expression
		}
		val := line[vs:ve]
		if !quoted {
			// Trim what ends the enclosing syntax, not a closing bracket the
			// value opened ({CRED}, <PLACEHOLDER>, f(x)).
			val = strings.TrimRight(val, ",;")
			for _, p := range []string{"()", "{}", "[]", "<>"} {
				if !strings.ContainsRune(val, rune(p[0])) {
					val = strings.TrimRight(val, p[1:])
				}
			}
			val = strings.TrimRight(val, ",;")
			// "Authorization: Bearer value": take the scheme's argument.
			if l := strings.ToLower(val); l == "bearer" || l == "basic" || l == "token" {
				rest := line[vs+len(val):]
				t := strings.TrimLeft(rest, " ")
				if n := strings.IndexAny(t, " \t\"'`,;"); n >= 0 {
					t = t[:n]
				}
				if t != "" {
					val = line[vs : vs+len(val)+len(rest)-len(strings.TrimLeft(rest, " "))+len(t)]
				}
			}
		}
		if v, ok := judge(name, val); ok {
			d.add(base+vs+v.start, v.rule, val[v.start:v.end], Finding{Name: name})
		}
	}
	var seen []int // starts of the names judged
	for _, w := range sensitiveWords {
		for from := 0; ; {
			i := bytes.Index(lower[from:], []byte(w))
			if i < 0 {
				break
			}
			i += from
			from = i + len(w)
			s, e := i, i+len(w)
			for s > 0 && isNameByte(line[s-1]) {
				s--
			}
			for e < len(line) && isNameByte(line[e]) {
				e++
			}
			if slices.Contains(seen, s) {
				continue
			}
			seen = append(seen, s)
			from = max(from, e)
			d.pair(line, s, e, try)
		}
	}
	if bytes.Contains(lower, []byte("value")) {
		for _, m := range attrRE.FindAllStringSubmatchIndex(line, -1) {
			try(line[m[2]:m[3]], m[4], m[5])
		}
	}
}

func isNameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '$' || c == '-'
}

// pair finds the value that follows the name line[s:e] and hands it to try.
func (d *doc) pair(line string, s, e int, try func(name string, vs, ve int)) {
	name := line[s:e]
	flag := strings.HasPrefix(name, "-")
	quotedName := s > 0 && (line[s-1] == '"' || line[s-1] == '\'')
	j := e
	for j < len(line) && (line[j] == '"' || line[j] == '\'' || line[j] == ']') {
		j++
	}
	k := skipSpace(line, j)
	switch {
	case k < len(line) && line[k] == '=' && k+1 < len(line) && line[k+1] == '=':
		return // a comparison
	case strings.HasPrefix(line[k:], ":="), strings.HasPrefix(line[k:], "=>"):
		k += 2
	case k < len(line) && (line[k] == '=' || line[k] == ':'):
		k++
	case k < len(line) && line[k] == ',' && quotedName:
		// Header.Set("Authorization", "Bearer ..."), os.environ.setdefault("KEY", "...")
		k = skipSpace(line, k+1)
		if vs, ve, ok := quotedAt(line, k); ok {
			try(name, vs, ve)
		}
		return
	case flag && k > j && k < len(line):
		// --token VALUE
		if vs, ve := valueAt(line, k); ve > vs && line[vs] != '-' {
			try(strings.TrimLeft(name, "-"), vs, ve)
		}
		return
	default:
		return
	}
	k = skipSpace(line, k)
	vs, ve := valueAt(line, k)
	if ve <= vs {
		return
	}
	if d.code && !strings.ContainsRune(`"'`+"`", rune(line[vs])) && line[k-1] == ':' {
		// A type annotation: api_key: str = "value".
		if eq := strings.IndexByte(line[ve:], '='); eq >= 0 {
			q := skipSpace(line, ve+eq+1)
			if qs, qe, ok := quotedAt(line, q); ok {
				try(name, qs, qe)
			}
		}
		return
	}
	try(strings.TrimLeft(name, "-"), vs, ve)
}

func skipSpace(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// quotedAt returns the span of a quoted string (quotes included) at i.
func quotedAt(s string, i int) (int, int, bool) {
	if i >= len(s) || !strings.ContainsRune(`"'`+"`", rune(s[i])) {
		return 0, 0, false
	}
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		if s[j] == '\\' && q != '`' {
			j++
			continue
		}
		if s[j] == q {
			return i, j + 1, true
		}
	}
	return 0, 0, false
}

// valueAt returns the span of the value at i: a quoted string (quotes
// included) or a run of characters up to white space or a quote.
func valueAt(s string, i int) (int, int) {
	if vs, ve, ok := quotedAt(s, i); ok {
		return vs, ve
	}
	j := i
	for j < len(s) && s[j] != ' ' && s[j] != '\t' && s[j] != '"' && s[j] != '\'' && s[j] != '`' {
		j++
	}
	return i, j
}
