package rotation

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/rotatorhq/rotator/internal/store"
)

// cronParser accepts standard 5-field expressions, descriptors (@daily,
// @every 45m) and a CRON_TZ=/TZ= prefix.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ParseSchedule parses a cron schedule as the config accepts it.
func ParseSchedule(expr string) (cron.Schedule, error) {
	s, err := cronParser.Parse(expr)
	if err != nil {
		return nil, fmt.Errorf("invalid schedule %q: %w", expr, err)
	}
	return s, nil
}

// DefaultRenewAt is the fraction of max_age after which a credential is due
// when the policy sets neither renew_before nor renew_at.
const DefaultRenewAt = 0.8

// maxJitter bounds the jitter added to a due time.
const maxJitter = 2 * time.Minute

// Plan is the outcome of scheduling one credential.
type Plan struct {
	// Due is when the next rotation should start (with jitter).
	Due time.Time
	// Expiry is when the current value stops being acceptable: the earlier
	// of issued + max_age and the provider-reported expiry. Zero if unknown.
	Expiry time.Time
	// Reason names what decided Due: "new", "schedule", "max_age", "expiry".
	Reason string
}

// Schedule computes the next rotation of a credential (DESIGN.md §6).
//
//   - A credential with no current version is due now ("new").
//   - Otherwise due = the earliest of: the cron schedule's next time after
//     the last rotation; issued + max_age − renew_before (or issued +
//     max_age × renew_at); the provider-reported expiry − renew_before (or
//     issued + renew_at × the value's lifetime, also when renew_before
//     exceeds that lifetime).
//   - The due time moves into the next window unless that would pass expiry.
//   - A deterministic jitter (a hash of the credential and issue time) of at
//     most min(5% of the rotation interval, 2m) spreads credentials that
//     were created together; it never moves past expiry.
func Schedule(c store.Credential, now time.Time) (Plan, error) {
	if c.Current == nil {
		return Plan{Due: now.UTC(), Reason: "new"}, nil
	}
	p := c.Policy
	issued := c.Current.ActivatedAt
	if issued.IsZero() {
		issued = c.Current.CreatedAt
	}
	last := c.State.LastRotatedAt
	if last.IsZero() {
		last = issued
	}

	var plan Plan
	consider := func(t time.Time, reason string) {
		if !t.IsZero() && (plan.Due.IsZero() || t.Before(plan.Due)) {
			plan.Due, plan.Reason = t, reason
		}
	}

	renewBefore := p.RenewBefore
	frac := p.RenewAt
	if frac <= 0 || frac >= 1 {
		frac = DefaultRenewAt
	}
	if p.MaxAge > 0 {
		plan.Expiry = issued.Add(p.MaxAge)
		if renewBefore == 0 {
			renewBefore = p.MaxAge - time.Duration(float64(p.MaxAge)*frac)
		}
		consider(plan.Expiry.Add(-renewBefore), "max_age")
	}
	if exp := c.Current.ExpiresAt; !exp.IsZero() {
		if plan.Expiry.IsZero() || exp.Before(plan.Expiry) {
			plan.Expiry = exp
		}
		// renew_at is a fraction of the value's own lifetime, not of
		// max_age; and a renew_before longer than that lifetime would make
		// every new value due at once (a rotation loop), so it falls back
		// to the fraction too.
		due := exp.Add(-p.RenewBefore)
		if p.RenewBefore == 0 || !due.After(issued) {
			due = issued.Add(time.Duration(float64(exp.Sub(issued)) * frac))
		}
		consider(due, "expiry")
	}
	var interval time.Duration
	if p.Schedule != "" {
		sched, err := ParseSchedule(p.Schedule)
		if err != nil {
			return Plan{}, err
		}
		next := sched.Next(last)
		interval = sched.Next(next).Sub(next)
		consider(next.UTC(), "schedule")
	}
	if plan.Due.IsZero() {
		return Plan{}, fmt.Errorf("credential %s has neither max_age nor schedule", c.ID)
	}
	if interval == 0 || (p.MaxAge > 0 && p.MaxAge-renewBefore < interval) {
		interval = p.MaxAge - renewBefore
	}
	if life := plan.Due.Sub(issued); plan.Reason == "expiry" && (interval <= 0 || life < interval) {
		interval = life
	}

	if p.Window != nil {
		moved, err := intoWindow(plan.Due, *p.Window)
		if err != nil {
			return Plan{}, err
		}
		if plan.Expiry.IsZero() || !moved.After(plan.Expiry) {
			plan.Due = moved
		}
	}

	if j := jitter(c.ID, issued, interval); j > 0 {
		if t := plan.Due.Add(j); plan.Expiry.IsZero() || t.Before(plan.Expiry) {
			if p.Window == nil || inWindow(t, *p.Window) {
				plan.Due = t
			}
		}
	}
	// The store keeps microseconds; so does the plan, so that a due time
	// read back equals the one computed.
	plan.Due = plan.Due.UTC().Truncate(time.Microsecond)
	plan.Expiry = plan.Expiry.UTC()
	if plan.Expiry.Equal(time.Time{}.UTC()) {
		plan.Expiry = time.Time{}
	}
	return plan, nil
}

func jitter(id string, issued time.Time, interval time.Duration) time.Duration {
	limit := min(interval/20, maxJitter)
	if limit <= 0 {
		return 0
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(id))
	_, _ = h.Write([]byte(strconv.FormatInt(issued.UnixNano(), 10)))
	return time.Duration(h.Sum64() % uint64(limit))
}

// parseClock parses "HH:MM" into minutes after midnight.
func parseClock(s string) (int, error) {
	h, m, ok := strings.Cut(s, ":")
	hh, err1 := strconv.Atoi(h)
	mm, err2 := strconv.Atoi(m)
	if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 24 || mm < 0 || mm > 59 || hh == 24 && mm != 0 {
		return 0, fmt.Errorf("invalid time of day %q; use HH:MM such as 02:00", s)
	}
	return hh*60 + mm, nil
}

func windowLocation(w store.Window) (*time.Location, error) {
	if w.Timezone == "" {
		return time.UTC, nil
	}
	loc, err := time.LoadLocation(w.Timezone)
	if err != nil {
		return nil, fmt.Errorf("invalid window timezone %q: %w", w.Timezone, err)
	}
	return loc, nil
}

// inWindow reports whether t falls inside the daily window (which may wrap
// past midnight, e.g. 22:00–04:00).
func inWindow(t time.Time, w store.Window) bool {
	start, err1 := parseClock(w.Start)
	end, err2 := parseClock(w.End)
	loc, err3 := windowLocation(w)
	if err1 != nil || err2 != nil || err3 != nil {
		return true
	}
	lt := t.In(loc)
	m := lt.Hour()*60 + lt.Minute()
	if start <= end {
		return m >= start && m < end
	}
	return m >= start || m < end
}

// intoWindow returns t if it lies in the window, else the next window start.
func intoWindow(t time.Time, w store.Window) (time.Time, error) {
	start, err := parseClock(w.Start)
	if err != nil {
		return t, err
	}
	if _, err := parseClock(w.End); err != nil {
		return t, err
	}
	loc, err := windowLocation(w)
	if err != nil {
		return t, err
	}
	if inWindow(t, w) {
		return t, nil
	}
	lt := t.In(loc)
	day := time.Date(lt.Year(), lt.Month(), lt.Day(), 0, 0, 0, 0, loc)
	for i := 0; i < 3; i++ {
		// time.Date normalises minutes past 59 and handles DST shifts.
		cand := time.Date(day.Year(), day.Month(), day.Day()+i, 0, start, 0, 0, loc)
		// On a spring-forward day a window inside the skipped hour does
		// not exist: cand is normalised past it, so check it is inside.
		if !cand.Before(t) && inWindow(cand, w) {
			return cand, nil
		}
	}
	return t, nil
}

// EffectiveStatus derives the status a user should see at now from the
// stored status and the schedule: a healthy credential past its due time is
// due, past due by more than half the time that was left between due and
// expiry (or by 10 minutes when no expiry is known) it is overdue, and past
// its expiry it is expired. Engine-owned statuses (rotating,
// failing, needs_attention) are shown as stored, except that an expired
// value is always reported as expired.
func EffectiveStatus(c store.Credential, now time.Time) store.Status {
	return StatusAt(c.State, c.Current != nil, now)
}

// StatusAt is EffectiveStatus of a credential in state state, with a
// current version or not.
func StatusAt(state store.CredentialState, hasCurrent bool, now time.Time) store.Status {
	st := state.Status
	if !hasCurrent {
		if st == "" {
			return store.StatusNew
		}
		return st
	}
	exp := state.ExpiresAt
	if !exp.IsZero() && !now.Before(exp) {
		return store.StatusExpired
	}
	switch st {
	case store.StatusHealthy, store.StatusDue, store.StatusOverdue, "":
	case store.StatusRotating, store.StatusExpired, store.StatusFailing, store.StatusNeedsAttention, store.StatusNew:
		return st
	default:
		return st
	}
	due := state.NextRotationAt
	if due.IsZero() || now.Before(due) {
		return store.StatusHealthy
	}
	if !exp.IsZero() {
		slack := exp.Sub(due) / 2
		if now.After(due.Add(slack)) {
			return store.StatusOverdue
		}
	} else if now.Sub(due) > 10*time.Minute {
		return store.StatusOverdue
	}
	return store.StatusDue
}
