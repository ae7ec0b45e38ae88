package config

import (
	"maps"
	"slices"
	"strings"
	"time"
)

// intern returns one copy of each short string: the consumers, owners,
// scopes, labels and settings of 100,000 credentials repeat a few hundred
// strings, which need not be held 100,000 times.
func (p *parser) intern(s string) string {
	if len(s) > 64 {
		return s
	}
	if v, ok := p.strs[s]; ok {
		return v
	}
	p.strs[s] = s
	return s
}

// shareLabels returns one map for each set of labels: credentials with
// equal labels share it (Credential.Labels is read-only).
func (p *parser) shareLabels(m map[string]string) map[string]string {
	if len(m) == 0 {
		return m
	}
	keys := slices.Sorted(maps.Keys(m))
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(m[k])
		b.WriteByte(0)
	}
	if shared, ok := p.labelSets[b.String()]; ok {
		return shared
	}
	p.labelSets[b.String()] = m
	return m
}

// knownZone reports whether name is an IANA time zone (Local is not: it
// would depend on the host), loading each name once per document.
func (p *parser) knownZone(name string) bool {
	ok, seen := p.zones[name]
	if !seen {
		_, err := time.LoadLocation(name)
		ok = err == nil && name != "Local"
		p.zones[name] = ok
	}
	return ok
}
