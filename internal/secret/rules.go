package secret

import (
	_ "embed"
	"fmt"
	"regexp"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// rulesYAML is the one list of detection rules (rules.yaml), shared by
// DetectToken and rotator scan.
//
//go:embed rules.yaml
var rulesYAML []byte

// Rule kinds (the kind field of rules.yaml).
const (
	// RuleToken finds a value of a known format anywhere.
	RuleToken = "token"
	// RuleURL finds a URL that carries a credential.
	RuleURL = "url"
	// RuleAssignment judges a value under a sensitive name by its entropy.
	RuleAssignment = "assignment"
	// RuleToolParam is an MCP tool input that asks the model for a credential.
	RuleToolParam = "tool-param"
)

// Rule is one detection rule of rules.yaml, compiled. Rules are shared and
// read-only.
type Rule struct {
	ID          string
	Description string
	Severity    string
	Kind        string
	// Regexp is nil for the assignment and tool-param kinds.
	Regexp *regexp.Regexp
	// Keywords are lower-case; every match contains one of them.
	Keywords []string
	// Requires are substrings every match contains, all of them.
	Requires   []string
	Check      string
	MinEntropy float64
	allow      []*regexp.Regexp
	secretIdx  int // submatch index of the secret
}

type rulesFile struct {
	Rules []struct {
		ID          string   `yaml:"id"`
		Description string   `yaml:"description"`
		Severity    string   `yaml:"severity"`
		Kind        string   `yaml:"kind"`
		Regexp      string   `yaml:"regexp"`
		Keywords    []string `yaml:"keywords"`
		Requires    []string `yaml:"requires"`
		Check       string   `yaml:"check"`
		MinEntropy  float64  `yaml:"min_entropy"`
		Allow       []string `yaml:"allow"`
	} `yaml:"rules"`
	Allow []string `yaml:"allow"`
}

type ruleSet struct {
	rules []*Rule
	allow []*regexp.Regexp
}

var loadRules = sync.OnceValue(func() ruleSet {
	rs, err := parseRules(rulesYAML)
	if err != nil {
		panic("secret: rules.yaml: " + err.Error()) // a build defect, caught by the tests
	}
	return rs
})

var checks = map[string]func(string) bool{
	"":      func(string) bool { return true },
	"digit": hasDigit,
	"alnum": func(s string) bool { return hasDigit(s) && strings.ContainsFunc(s, isLetter) },
	"jwt":   jwtHeader,
	// url-param: the query parameter is not a page token or a cursor.
	"url-param": urlParam,
}

var notCredentialParam = regexp.MustCompile(`(?i)page|next|cursor|continuation|csrf|state|nonce|challenge|sync`)

func urlParam(match string) bool {
	i := strings.LastIndexAny(match, "?&")
	if i < 0 {
		return true
	}
	name, _, _ := strings.Cut(match[i+1:], "=")
	return !notCredentialParam.MatchString(name)
}

var severities = map[string]bool{"high": true, "medium": true, "low": true}

func parseRules(b []byte) (ruleSet, error) {
	var f rulesFile
	if err := yaml.Unmarshal(b, &f); err != nil {
		return ruleSet{}, err
	}
	var rs ruleSet
	seen := map[string]bool{}
	for i, r := range f.Rules {
		where := fmt.Sprintf("rule %d (%s)", i+1, r.ID)
		if r.ID == "" || seen[r.ID] {
			return rs, fmt.Errorf("%s: id missing or repeated", where)
		}
		seen[r.ID] = true
		if !severities[r.Severity] {
			return rs, fmt.Errorf("%s: severity %q: use high, medium or low", where, r.Severity)
		}
		if _, ok := checks[r.Check]; !ok {
			return rs, fmt.Errorf("%s: check %q: use digit, alnum, jwt or url-param", where, r.Check)
		}
		c := &Rule{ID: r.ID, Description: r.Description, Severity: r.Severity, Kind: r.Kind, Check: r.Check, MinEntropy: r.MinEntropy, Requires: r.Requires}
		switch r.Kind {
		case RuleToken, RuleURL:
			re, err := regexp.Compile(r.Regexp)
			if err != nil {
				return rs, fmt.Errorf("%s: regexp: %w", where, err)
			}
			if len(r.Keywords) == 0 {
				return rs, fmt.Errorf("%s: a %s rule needs keywords", where, r.Kind)
			}
			c.Regexp = re
			if i := re.SubexpIndex("secret"); i > 0 {
				c.secretIdx = i
			}
		case RuleAssignment, RuleToolParam:
		default:
			return rs, fmt.Errorf("%s: kind %q: use token, url, assignment or tool-param", where, r.Kind)
		}
		for _, k := range r.Keywords {
			c.Keywords = append(c.Keywords, strings.ToLower(k))
		}
		for _, a := range r.Allow {
			re, err := regexp.Compile(a)
			if err != nil {
				return rs, fmt.Errorf("%s: allow %q: %w", where, a, err)
			}
			c.allow = append(c.allow, re)
		}
		rs.rules = append(rs.rules, c)
	}
	for _, a := range f.Allow {
		re, err := regexp.Compile(a)
		if err != nil {
			return rs, fmt.Errorf("allow %q: %w", a, err)
		}
		rs.allow = append(rs.allow, re)
	}
	return rs, nil
}

// Rules returns the detection rules of rules.yaml in file order. The caller
// must not modify them.
func Rules() []*Rule { return loadRules().rules }

// RuleByID returns the rule with the given id, or nil.
func RuleByID(id string) *Rule {
	for _, r := range Rules() {
		if r.ID == id {
			return r
		}
	}
	return nil
}

// Placeholder reports whether s, a candidate secret, is a reference
// (${env:X}, op://..., ${{ secrets.X }}) or a placeholder (<TOKEN>,
// your-token-here, changeme, xxxx...) by the global allow list of
// rules.yaml.
func Placeholder(s string) bool {
	for _, re := range loadRules().allow {
		if re.MatchString(s) {
			return true
		}
	}
	return false
}

// Match is one match of a rule: the byte offsets of the whole match and of
// the secret within the searched text.
type Match struct {
	Start, End             int
	SecretStart, SecretEnd int
}

// FindAll returns the matches of a token or url rule in s that pass its
// check and entropy floor. With allow set, matches whose secret is a
// documented example (the rule's allow list) or a reference or placeholder
// (the global allow list) are left out.
func (r *Rule) FindAll(s string, allow bool) []Match {
	if r.Regexp == nil {
		return nil
	}
	for _, q := range r.Requires {
		if !strings.Contains(s, q) {
			return nil
		}
	}
	var out []Match
	for _, m := range r.Regexp.FindAllStringSubmatchIndex(s, -1) {
		ss, se := m[0], m[1]
		if r.secretIdx > 0 {
			ss, se = m[2*r.secretIdx], m[2*r.secretIdx+1]
			if ss < 0 {
				continue
			}
		}
		sec := s[ss:se]
		if !checks[r.Check](s[m[0]:m[1]]) || (r.MinEntropy > 0 && shannon(sec) < r.MinEntropy) {
			continue
		}
		if allow && r.Allowed(sec) {
			continue
		}
		out = append(out, Match{Start: m[0], End: m[1], SecretStart: ss, SecretEnd: se})
	}
	return out
}

// Allowed reports whether sec is on the rule's allow list or the global one.
func (r *Rule) Allowed(sec string) bool {
	for _, re := range r.allow {
		if re.MatchString(sec) {
			return true
		}
	}
	return Placeholder(sec)
}

// Entropy returns the Shannon entropy of s in bits per byte.
func Entropy(s string) float64 { return shannon(s) }

// LooksLikeIdentifier reports whether every word of s (split at anything but
// letters and digits) is identifier-like ("mcp", "Gateway", "AWS",
// "clientId", "v2", "2024"): a name, not a draw from a random generator.
func LooksLikeIdentifier(s string) bool {
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return !isLetter(r) && (r < '0' || r > '9') }) {
		if !identWord.MatchString(w) {
			return false
		}
	}
	return true
}

// RandomLen is how many characters of s fall in words that are not
// identifier-like (see LooksLikeIdentifier).
func RandomLen(s string) int {
	n := 0
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return !isLetter(r) && (r < '0' || r > '9') }) {
		if !identWord.MatchString(w) {
			n += len(w)
		}
	}
	return n
}
