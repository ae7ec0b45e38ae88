package dashboard

import (
	"fmt"
	"html/template"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

var funcs = template.FuncMap{
	"when":     when,
	"ago":      ago,
	"dur":      dur,
	"took":     took,
	"statusOf": statusClass,
	"runClass": runClass,
	"attn":     func(s store.Status) bool { return store.NeedsAttention(s) },
	"ordinal":  func(i int) int { return i + 1 },
}

// when formats a time as RFC 3339 in UTC; a zero time is "—".
func when(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return t.UTC().Format(time.RFC3339)
}

// ago says how far t is from now: "in 3h 5m", "12m ago".
func ago(t, now time.Time) string {
	if t.IsZero() {
		return "not scheduled"
	}
	d := t.Sub(now)
	if d >= 0 {
		return "in " + dur(d)
	}
	return dur(-d) + " ago"
}

// dur is a short, human duration: "3d 4h", "5h 12m", "42s".
func dur(d time.Duration) string {
	d = d.Round(time.Second)
	switch {
	case d >= 24*time.Hour:
		return fmt.Sprintf("%dd %dh", d/(24*time.Hour), d%(24*time.Hour)/time.Hour)
	case d >= time.Hour:
		return fmt.Sprintf("%dh %dm", d/time.Hour, d%time.Hour/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%dm %ds", d/time.Minute, d%time.Minute/time.Second)
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// took is the time between two instants, to the millisecond; "—" when
// either is unknown.
func took(from, to time.Time) string {
	if from.IsZero() || to.IsZero() {
		return "—"
	}
	d := to.Sub(from)
	if d < time.Millisecond {
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
	if d < time.Second {
		return fmt.Sprintf("%d ms", d.Milliseconds())
	}
	return d.Round(10 * time.Millisecond).String()
}

// statusClass is the CSS class of a credential status: bad, warn, busy,
// ok or new.
func statusClass(s store.Status) string {
	switch s {
	case store.StatusFailing, store.StatusNeedsAttention, store.StatusExpired:
		return "bad"
	case store.StatusOverdue, store.StatusDue:
		return "warn"
	case store.StatusRotating:
		return "busy"
	case store.StatusHealthy:
		return "ok"
	case store.StatusNew:
		return "new"
	}
	return "new"
}

// runClasses are the CSS classes of terminal run states; every other
// state is "busy".
var runClasses = map[rotation.State]string{
	rotation.StateSucceeded:  "ok",
	rotation.StateFailed:     "bad",
	rotation.StateRolledBack: "warn",
}

// runClass is the CSS class of a run state.
func runClass(state string) string {
	if c, ok := runClasses[rotation.State(state)]; ok {
		return c
	}
	return "busy"
}
