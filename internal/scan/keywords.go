package scan

import "bytes"

// The keyword index finds, in one pass over a file, every line that holds
// a keyword of a rule or a sensitive word, so that the regexps run only on
// those lines. Every keyword has at least two bytes; a table of their first
// two bytes lets the pass skip all other positions with one lookup.

var (
	keywords   []string // every keyword, lower-case
	keywordID  = map[string]int{}
	bigramSet  [65536 / 64]uint64
	bigramKeys = map[uint16][]int{}
)

func init() {
	add := func(k string) {
		if _, ok := keywordID[k]; ok {
			return
		}
		if len(k) < 2 {
			panic("scan: keyword " + k + " is shorter than two bytes")
		}
		id := len(keywords)
		keywords = append(keywords, k)
		keywordID[k] = id
		bg := uint16(k[0])<<8 | uint16(k[1])
		bigramSet[bg/64] |= 1 << (bg % 64)
		bigramKeys[bg] = append(bigramKeys[bg], id)
	}
	for _, r := range patternRules {
		for _, k := range r.Keywords {
			add(k)
		}
	}
	for _, k := range sensitiveWords {
		add(k)
	}
}

// indexKeywords returns, per keyword id, the lines (ascending, each once)
// that hold the keyword.
func indexKeywords(lower []byte) [][]int {
	hits := make([][]int, len(keywords))
	line := 0
	n := len(lower)
	for i := 0; i+1 < n; i++ {
		c := lower[i]
		if c == '\n' {
			line++
			continue
		}
		bg := uint16(c)<<8 | uint16(lower[i+1])
		if bigramSet[bg/64]&(1<<(bg%64)) == 0 {
			continue
		}
		for _, id := range bigramKeys[bg] {
			if bytes.HasPrefix(lower[i:], []byte(keywords[id])) {
				if h := hits[id]; len(h) == 0 || h[len(h)-1] != line {
					hits[id] = append(h, line)
				}
			}
		}
	}
	return hits
}
