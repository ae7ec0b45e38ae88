// Package credsel parses and matches credential selectors, as API token
// scopes (consume:SELECTOR) and the config's delivery: section name
// credentials: a credential id ("github-mcp"), labels that must all match
// ("team=platform,env=prod"), or "*" for every credential.
package credsel

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// idRE is the form of a credential id (internal/config's slugs).
var idRE = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,127}$`)

// Selector selects credentials: exactly one of All, ID and Labels is set.
type Selector struct {
	All    bool
	ID     string
	Labels map[string]string
}

// Parse parses a selector: "*", a credential id, or key=value pairs
// separated by commas (all must match).
func Parse(s string) (Selector, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return Selector{}, fmt.Errorf("empty credential selector: name a credential id (github-mcp), labels (team=platform,env=prod) or *")
	case s == "*":
		return Selector{All: true}, nil
	case !strings.Contains(s, "="):
		if !idRE.MatchString(s) {
			return Selector{}, fmt.Errorf("credential selector %q: not a credential id (lower-case letters, digits, '.', '_', '-') nor labels (key=value,...) nor *", s)
		}
		return Selector{ID: s}, nil
	}
	labels := map[string]string{}
	for part := range strings.SplitSeq(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if !ok || k == "" {
			return Selector{}, fmt.Errorf("credential selector %q: %q is not key=value", s, part)
		}
		if old, dup := labels[k]; dup && old != v {
			return Selector{}, fmt.Errorf("credential selector %q: label %s given twice", s, k)
		}
		labels[k] = v
	}
	return Selector{Labels: labels}, nil
}

// Matches reports whether a credential with this id and these labels is
// selected.
func (s Selector) Matches(id string, labels map[string]string) bool {
	switch {
	case s.All:
		return true
	case s.ID != "":
		return s.ID == id
	case len(s.Labels) > 0:
		for k, v := range s.Labels {
			if got, ok := labels[k]; !ok || got != v {
				return false
			}
		}
		return true
	}
	return false
}

// String returns the selector as Parse reads it (labels sorted by key).
func (s Selector) String() string {
	switch {
	case s.All:
		return "*"
	case s.ID != "":
		return s.ID
	}
	parts := make([]string, 0, len(s.Labels))
	for _, k := range slices.Sorted(maps.Keys(s.Labels)) {
		parts = append(parts, k+"="+s.Labels[k])
	}
	return strings.Join(parts, ",")
}
