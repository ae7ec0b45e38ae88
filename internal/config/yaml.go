package config

import (
	"regexp"
	"strconv"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"

	"github.com/rotatorhq/rotator/internal/secret"
)

// Limits that keep a hostile document (alias bombs, cycles, deep nesting)
// from exhausting the loader.
const (
	maxDepth = 64
	maxNodes = 100_000
)

// pair is one entry of a mapping, with merge keys (<<) expanded.
type pair struct {
	key   string
	knode *yaml.Node
	val   *yaml.Node
}

// deref follows alias nodes to the node they name. It returns nil for an
// alias cycle.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode; i++ {
		if i > maxDepth {
			return nil
		}
		n = n.Alias
	}
	return n
}

// kindName describes a node for "must be X, got Y" messages.
func kindName(n *yaml.Node) string {
	n = deref(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "nothing (null)"
		case "!!bool":
			return "a boolean"
		case "!!int", "!!float":
			return "a number"
		}
		return "a string"
	case yaml.DocumentNode:
		return "a document"
	}
	return "an unknown node"
}

// isNull reports whether n is absent or an explicit null.
func isNull(n *yaml.Node) bool {
	n = deref(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// plainName matches keys that may be written bare in a dotted path.
var plainName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// join appends a mapping key to a dotted path. Keys that are not plain
// names are quoted in brackets; keys that look like secrets are redacted.
func join(path, key string) string {
	var k string
	switch {
	case len(key) > 256:
		k = "[(a key of " + strconv.Itoa(len(key)) + " bytes)]"
	case looksSecret(key):
		k = secret.Redacted
	case plainName.MatchString(key):
		if path == "" {
			return key
		}
		return path + "." + key
	default:
		k = "[" + strconv.Quote(key) + "]"
	}
	return path + k
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// looksSecret reports whether a string from the document must never be
// repeated in a message: it contains a known token, looks random as a
// whole, or holds a random-looking part. The parts matter because a
// secret glued to other text ("x${" + secret, a non-ASCII prefix, a run of
// letters) no longer looks random as a whole.
//
// Every key of every credential is judged (paths are built from keys), so
// short strings found not to look secret are remembered: never those that
// do, so no secret stays in memory.
func looksSecret(s string) bool {
	if len(s) > maxRemembered {
		return judgeSecret(s)
	}
	plain.Lock()
	_, ok := plain.m[s]
	plain.Unlock()
	if ok {
		return false
	}
	if judgeSecret(s) {
		return true
	}
	plain.Lock()
	if len(plain.m) < maxPlain {
		plain.m[s] = struct{}{}
	}
	plain.Unlock()
	return false
}

// plain remembers up to maxPlain strings of at most maxRemembered bytes
// that do not look secret.
var plain = struct {
	sync.Mutex
	m map[string]struct{}
}{m: map[string]struct{}{}}

const (
	maxRemembered = 32
	maxPlain      = 4096
)

func judgeSecret(s string) bool {
	if _, ok := secret.DetectToken(s); ok || secret.HighEntropy(s) {
		return true
	}
	for _, w := range printableRun.FindAllString(s, -1) {
		if w != s && secret.HighEntropy(w) {
			return true
		}
	}
	for _, w := range alnumRun.FindAllString(s, -1) {
		if strings.ContainsAny(w, "0123456789") && strings.ContainsFunc(w, isASCIILetter) && !identifierWord.MatchString(w) {
			return true
		}
	}
	return false
}

var (
	// printableRun splits text at white space and non-ASCII characters.
	printableRun = regexp.MustCompile(`[!-~]+`)
	// alnumRun finds letter-and-digit runs long enough to hold a key.
	alnumRun = regexp.MustCompile(`[A-Za-z0-9]{16,}`)
	// identifierWord matches the letter-and-digit runs of names: a word in
	// lower, Capitalised, UPPER or camel case with leading or trailing
	// digits ("TestResolve123", "v2024"), as secret.HighEntropy judges them.
	identifierWord = regexp.MustCompile(`^[0-9]*(?:[a-z]+|[A-Z][a-z]+|[A-Z]+)(?:[A-Z][a-z]+)*[0-9]*$`)
)

func isASCIILetter(r rune) bool { return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' }

// show quotes a value from the document for an error message, unless it
// might be a secret (or is too long to be useful), in which case it says so
// instead.
func show(s string) string {
	if len(s) > 120 || looksSecret(s) || strings.ContainsFunc(s, func(r rune) bool { return r < ' ' }) {
		return "(value not shown)"
	}
	return strconv.Quote(s)
}

var decimalInt = regexp.MustCompile(`^[-+]?(?:0|[1-9][0-9]*)$`)

// scalarValue converts a scalar node to the Go value a settings.Map holds:
// string, bool, int, float64 or nil. Integers that YAML reads in another
// base (0600, 0x1f) keep their text, so that "mode: 0600" means what it says.
func scalarValue(n *yaml.Node) any {
	switch n.Tag {
	case "!!null":
		return nil
	case "!!bool":
		if b, err := strconv.ParseBool(strings.ToLower(n.Value)); err == nil {
			return b
		}
	case "!!int":
		if decimalInt.MatchString(n.Value) {
			if i, err := strconv.Atoi(n.Value); err == nil {
				return i
			}
		}
	case "!!float":
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil {
			return f
		}
	}
	return n.Value
}
