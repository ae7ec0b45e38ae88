package notify

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/settings"
)

// Grouping defaults, as Alertmanager names and sets them.
const (
	DefaultGroupWait      = 30 * time.Second
	DefaultGroupInterval  = 5 * time.Minute
	DefaultRepeatInterval = 4 * time.Hour
	// DefaultExpiringWithin is how close to expiry a credential whose
	// rotation has not succeeded triggers credential.expiring.
	DefaultExpiringWithin = 24 * time.Hour
	// DefaultRetention is how long settled deliveries and routed events are
	// kept.
	DefaultRetention = 30 * 24 * time.Hour
)

// GroupByFields are the event fields group_by may name, besides
// "label:NAME".
var GroupByFields = []string{"kind", "credential", "consumer", "run_id"}

// Config is the `notify:` section of the configuration: receivers, the
// routing tree and link templates. internal/config parses and validates it.
type Config struct {
	// Receivers are the configured receivers by name.
	Receivers map[string]ReceiverConfig
	// Route is the default (root) route; its children are tried first.
	Route Route
	// Links are URL templates with {run_id}, {credential} and {runbook}.
	Links LinkTemplates
	// ExpiringWithin: credential.expiring fires when the current value
	// expires within it and no rotation has succeeded.
	ExpiringWithin time.Duration
	// Retention: settled deliveries (with their attempts) and routed events
	// older than this are deleted.
	Retention time.Duration
}

// ReceiverConfig is one entry of notify.receivers.
type ReceiverConfig struct {
	Name string
	Type string
	// Settings hold references for secrets (signing secrets, passwords,
	// Slack webhook URLs), never values.
	Settings settings.Map
	Line     int
	// Lines are the lines of the settings' fields.
	Lines map[string]int
}

// LinkTemplates turn an event into URLs of its run and runbook.
type LinkTemplates struct {
	Run     string
	Runbook string
}

// Route sends matching events to a receiver (after Alertmanager's route).
// Zero matchers match everything. Children inherit the grouping settings.
type Route struct {
	Receiver string
	// Kinds, Consumers and Labels are the matchers: an event matches when
	// its kind is one of Kinds, its consumer one of Consumers and it has
	// every label of Labels (each when set).
	Kinds     []Kind
	Consumers []string
	Labels    map[string]string
	// Continue goes on to the next sibling after a match.
	Continue bool
	GroupBy  []string
	// GroupWait delays a new group's first message, GroupInterval any
	// further one; RepeatInterval mutes a repeat of the same kind for the
	// same credential at this receiver.
	GroupWait, GroupInterval, RepeatInterval time.Duration
	Routes                                   []Route
	Line                                     int
}

// Match is one (receiver, group) an event goes to.
type Match struct {
	Receiver string
	// GroupKey identifies the group: route position, receiver and the
	// group_by values of the event.
	GroupKey                                 string
	GroupWait, GroupInterval, RepeatInterval time.Duration
}

// Fill sets the defaults of the grouping settings through the tree.
func (c *Config) Fill() {
	if c.ExpiringWithin <= 0 {
		c.ExpiringWithin = DefaultExpiringWithin
	}
	if c.Retention <= 0 {
		c.Retention = DefaultRetention
	}
	r := &c.Route
	if r.GroupBy == nil {
		r.GroupBy = []string{"kind"}
	}
	if r.GroupWait <= 0 {
		r.GroupWait = DefaultGroupWait
	}
	if r.GroupInterval <= 0 {
		r.GroupInterval = DefaultGroupInterval
	}
	if r.RepeatInterval <= 0 {
		r.RepeatInterval = DefaultRepeatInterval
	}
	inherit(r)
}

func inherit(parent *Route) {
	for i := range parent.Routes {
		ch := &parent.Routes[i]
		if ch.Receiver == "" {
			ch.Receiver = parent.Receiver
		}
		if ch.GroupBy == nil {
			ch.GroupBy = parent.GroupBy
		}
		if ch.GroupWait <= 0 {
			ch.GroupWait = parent.GroupWait
		}
		if ch.GroupInterval <= 0 {
			ch.GroupInterval = parent.GroupInterval
		}
		if ch.RepeatInterval <= 0 {
			ch.RepeatInterval = parent.RepeatInterval
		}
		inherit(ch)
	}
}

// Wants reports whether some route may take events of the kind: every
// kind for people, and a machine kind when a route names it. The engine
// writes only the kinds that are wanted (rotation.Options.NotifyKinds).
func (c *Config) Wants(k Kind) bool {
	if !MachineKinds[k] {
		return true
	}
	return c.Route.names(k)
}

func (r *Route) names(k Kind) bool {
	if slices.Contains(r.Kinds, k) {
		return true
	}
	for i := range r.Routes {
		if r.Routes[i].names(k) {
			return true
		}
	}
	return false
}

// Matches returns where ev goes: the deepest matching routes, first match
// wins among siblings unless it has continue; the default route when no
// child matches. Machine kinds (staged, cut_over, retired) go only to
// routes whose kinds name them.
func (c *Config) Matches(ev Event) []Match {
	var out []Match
	if !c.walk(&c.Route, "0", ev, &out) && c.Route.Receiver != "" && c.Route.matchesSelf(ev) {
		out = append(out, c.Route.match("0", ev))
	}
	return out
}

// walk tries r's children; it reports whether one matched.
func (c *Config) walk(r *Route, pos string, ev Event, out *[]Match) bool {
	matched := false
	for i := range r.Routes {
		ch := &r.Routes[i]
		if !ch.matchesSelf(ev) {
			continue
		}
		p := pos + "." + strconv.Itoa(i)
		if !c.walk(ch, p, ev, out) && ch.Receiver != "" {
			*out = append(*out, ch.match(p, ev))
		}
		matched = true
		if !ch.Continue {
			break
		}
	}
	return matched
}

func (r *Route) matchesSelf(ev Event) bool {
	if MachineKinds[ev.Kind] && !slices.Contains(r.Kinds, ev.Kind) {
		return false
	}
	if len(r.Kinds) > 0 && !slices.Contains(r.Kinds, ev.Kind) {
		return false
	}
	if len(r.Consumers) > 0 && !slices.Contains(r.Consumers, ev.Consumer) {
		return false
	}
	for k, v := range r.Labels {
		if ev.Labels[k] != v {
			return false
		}
	}
	return true
}

func (r *Route) match(pos string, ev Event) Match {
	var b strings.Builder
	b.WriteString(pos)
	b.WriteString(":")
	b.WriteString(r.Receiver)
	b.WriteString(":{")
	for i, f := range r.GroupBy {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(f)
		b.WriteString("=")
		b.WriteString(groupValue(f, ev))
	}
	b.WriteString("}")
	return Match{Receiver: r.Receiver, GroupKey: b.String(), GroupWait: r.GroupWait,
		GroupInterval: r.GroupInterval, RepeatInterval: r.RepeatInterval}
}

func groupValue(field string, ev Event) string {
	switch field {
	case "kind":
		return string(ev.Kind)
	case "credential":
		return ev.CredentialID
	case "consumer":
		return ev.Consumer
	case "run_id":
		return ev.RunID
	}
	if name, ok := strings.CutPrefix(field, "label:"); ok {
		return ev.Labels[name]
	}
	return ""
}

// ValidGroupBy reports whether f may appear in group_by.
func ValidGroupBy(f string) bool {
	if name, ok := strings.CutPrefix(f, "label:"); ok {
		return name != ""
	}
	return slices.Contains(GroupByFields, f)
}

// GroupDue is when a group with unsent events may be flushed: group_wait
// after its first unsent event when it never sent a message, otherwise
// group_interval after its last message (Alertmanager's timing). A burst
// is thus one message per group_interval per group, and nothing is
// dropped: the events wait for the next message.
func GroupDue(firstUnsent, lastSent time.Time, m Match) time.Time {
	if lastSent.IsZero() {
		return firstUnsent.Add(m.GroupWait)
	}
	return maxTime(lastSent.Add(m.GroupInterval), firstUnsent)
}

// IsState reports whether a kind describes a lasting state that
// repeat_interval mutes (the same kind for the same credential at the
// same receiver is not sent again within it).
func IsState(k Kind) bool {
	switch k {
	case KindNeedsAttention, KindOverdue, KindExpiring, KindChainBroken:
		return true
	}
	return false
}

// Link fills the link templates for ev.
func (t LinkTemplates) Link(ev Event) *Links {
	if t.Run == "" && t.Runbook == "" {
		return nil
	}
	l := &Links{}
	if t.Run != "" && ev.RunID != "" {
		l.Run = expand(t.Run, ev)
	}
	if t.Runbook != "" && ev.Runbook != "" {
		l.Runbook = expand(t.Runbook, ev)
	}
	if *l == (Links{}) {
		return nil
	}
	return l
}

func expand(tmpl string, ev Event) string {
	return strings.NewReplacer("{run_id}", ev.RunID, "{credential}", ev.CredentialID, "{runbook}", ev.Runbook).Replace(tmpl)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
