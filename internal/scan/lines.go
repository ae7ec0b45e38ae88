package scan

import (
	"bytes"
	"regexp"
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
	assignRE = regexp.MustCompile(`([A-Za-z_$@][A-Za-z0-9_.$\-]*)["'\]]*\s*(:=|=>|=|:)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`" + `|[^\s"'` + "`" + `]+)`)
	pairRE   = regexp.MustCompile(`["']([A-Za-z][A-Za-z0-9_.\-]*)["']\s*,\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')`)
	attrRE   = regexp.MustCompile(`(?i)\bname\s*=\s*["']([^"']+)["'][^>]*?\bvalue\s*=\s*("[^"]*"|'[^']*')`)
	annoRE   = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_]*)\s*:\s*[A-Za-z_][A-Za-z0-9_\[\], |.]*=\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')`)
	flagRE   = regexp.MustCompile(`(?:^|[\s"'\[,(])--?([A-Za-z][A-Za-z0-9_\-]*)(?:=|\s+|["']\s*,\s*["'])([^\s"',\]\)]+)`)
)

// sensitiveWords are the lower-case substrings that make a line worth the
// assignment regexps: every sensitive name holds one.
var sensitiveWords = []string{"secret", "token", "passw", "pwd", "key", "auth", "credential", "private", "dsn", "bearer", "cookie", "session", "pass", "pat"}

// linePass runs the token and url rules over the lines holding their
// keywords, and the assignment regexps over lines holding a sensitive word.
func (d *doc) linePass() {
	for _, r := range patternRules {
		if !d.hasAny(r.Keywords) {
			continue
		}
		d.keywordLines(r.Keywords, func(li int) {
			line := string(d.lineBytes(li))
			for _, m := range r.FindAll(line, true) {
				d.add(d.lines[li]+m.SecretStart, r, line[m.SecretStart:m.SecretEnd], Finding{})
			}
		})
	}
	if !d.hasAny(sensitiveWords) {
		return
	}
	d.keywordLines(sensitiveWords, func(li int) {
		line := string(d.lineBytes(li))
		if len(line) > 8192 {
			line = line[:8192] // minified text: the token rules have seen it all
		}
		d.assignments(li, line)
	})
}

func (d *doc) hasAny(keywords []string) bool {
	for _, k := range keywords {
		if bytes.Contains(d.lower, []byte(k)) {
			return true
		}
	}
	return false
}

// assignments judges the name/value pairs of one line.
func (d *doc) assignments(li int, line string) {
	base := d.lines[li]
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
			cut := ",;)}]"
			if !strings.Contains(val, "<") {
				cut += ">" // the end of a tag, not of a <PLACEHOLDER>
			}
			val = strings.TrimRight(val, cut)
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
	for _, m := range assignRE.FindAllStringSubmatchIndex(line, -1) {
		if m[5] < len(line) && line[m[5]] == '=' && line[m[4]:m[5]] == "=" {
			continue
		}
		if m[6] < len(line) && line[m[6]] == '=' {
			continue // "==" comparison
		}
		try(line[m[2]:m[3]], m[6], m[7])
	}
	if d.code && strings.Contains(line, ":") {
		for _, m := range annoRE.FindAllStringSubmatchIndex(line, -1) {
			try(line[m[2]:m[3]], m[4], m[5])
		}
	}
	for _, m := range pairRE.FindAllStringSubmatchIndex(line, -1) {
		try(line[m[2]:m[3]], m[4], m[5])
	}
	if strings.Contains(line, "value") {
		for _, m := range attrRE.FindAllStringSubmatchIndex(line, -1) {
			try(line[m[2]:m[3]], m[4], m[5])
		}
	}
	if strings.Contains(line, "-") {
		for _, m := range flagRE.FindAllStringSubmatchIndex(line, -1) {
			v := line[m[4]:m[5]]
			if strings.HasPrefix(v, "-") {
				continue
			}
			if vv, ok := judge(line[m[2]:m[3]], v); ok {
				d.add(base+m[4]+vv.start, vv.rule, v[vv.start:vv.end], Finding{Name: line[m[2]:m[3]]})
			}
		}
	}
}
