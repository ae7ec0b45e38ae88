package rotation_test

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// t0 is a Monday morning in UTC, far from any DST change.
var t0 = time.Date(2025, 3, 10, 10, 0, 0, 0, time.UTC)

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatalf("load location %s: %v", name, err)
	}
	return loc
}

// issuedCred returns a credential whose current version was issued (and
// last rotated) at issued.
func issuedCred(id string, pol store.Policy, issued time.Time) store.Credential {
	return store.Credential{
		ID:      id,
		Policy:  pol,
		Current: &store.Version{ID: "v-" + id, CredentialID: id, Stage: store.StageCurrent, CreatedAt: issued, ActivatedAt: issued},
		State:   store.CredentialState{Status: store.StatusHealthy, LastRotatedAt: issued},
	}
}

// inWindow is the test's own reading of a daily window [start, end), which
// may wrap midnight.
func inWindow(t testing.TB, at time.Time, w store.Window) bool {
	t.Helper()
	clock := func(s string) int {
		h, m, _ := strings.Cut(s, ":")
		hh, _ := strconv.Atoi(h)
		mm, _ := strconv.Atoi(m)
		return hh*60 + mm
	}
	loc := time.UTC
	if w.Timezone != "" {
		loc = mustLoc(t, w.Timezone)
	}
	lt := at.In(loc)
	m := lt.Hour()*60 + lt.Minute()
	start, end := clock(w.Start), clock(w.End)
	if start <= end {
		return m >= start && m < end
	}
	return m >= start || m < end
}

func TestSchedule(t *testing.T) {
	t.Parallel()
	berlin := mustLoc(t, "Europe/Berlin")
	const d = 24 * time.Hour

	type tc struct {
		cred store.Credential
		// base is the due time before jitter; maxJitter bounds the jitter
		// (exclusive); 0 means Due must equal base exactly.
		base      time.Time
		maxJitter time.Duration
		expiry    time.Time
		reason    string
		// inWindow: the due time must lie inside the policy's window.
		inWindow bool
	}
	withSchedule := func(c store.Credential, sched string) store.Credential {
		c.Policy.Schedule = sched
		return c
	}
	withLast := func(c store.Credential, last time.Time) store.Credential {
		c.State.LastRotatedAt = last
		return c
	}
	withExpiry := func(c store.Credential, exp time.Time) store.Credential {
		c.Current.ExpiresAt = exp
		return c
	}
	withWindow := func(c store.Credential, start, end, tz string) store.Credential {
		c.Policy.Window = &store.Window{Start: start, End: end, Timezone: tz}
		return c
	}

	tests := map[string]tc{
		"new credential is due now": {
			cred:   store.Credential{ID: "new", Policy: store.Policy{MaxAge: time.Hour}},
			base:   t0,
			reason: "new",
		},
		"max_age minus renew_before": {
			cred:      issuedCred("a", store.Policy{MaxAge: time.Hour, RenewBefore: 15 * time.Minute}, t0),
			base:      t0.Add(45 * time.Minute),
			maxJitter: 2 * time.Minute, // min(5% of 45m, 2m)
			expiry:    t0.Add(time.Hour),
			reason:    "max_age",
		},
		"renew_at fraction of max_age": {
			cred:      issuedCred("b", store.Policy{MaxAge: 10 * time.Hour, RenewAt: 0.5}, t0),
			base:      t0.Add(5 * time.Hour),
			maxJitter: 2 * time.Minute,
			expiry:    t0.Add(10 * time.Hour),
			reason:    "max_age",
		},
		"renew_at defaults to 0.8": {
			cred:      issuedCred("c", store.Policy{MaxAge: 10 * time.Hour}, t0),
			base:      t0.Add(8 * time.Hour),
			maxJitter: 2 * time.Minute,
			expiry:    t0.Add(10 * time.Hour),
			reason:    "max_age",
		},
		"short interval: jitter is at most 5%": {
			cred:      issuedCred("d", store.Policy{MaxAge: 10 * time.Minute}, t0),
			base:      t0.Add(8 * time.Minute),
			maxJitter: 24 * time.Second, // 5% of 8m
			expiry:    t0.Add(10 * time.Minute),
			reason:    "max_age",
		},
		"provider expiry earlier than max_age, renew_before": {
			cred:      withExpiry(issuedCred("e", store.Policy{MaxAge: 24 * time.Hour, RenewBefore: time.Hour}, t0), t0.Add(4*time.Hour)),
			base:      t0.Add(3 * time.Hour),
			maxJitter: 2 * time.Minute,
			expiry:    t0.Add(4 * time.Hour),
			reason:    "expiry",
		},
		"provider expiry earlier than max_age, renew_at is a fraction of the value's lifetime": {
			cred:      withExpiry(issuedCred("f", store.Policy{MaxAge: 24 * time.Hour, RenewAt: 0.75}, t0), t0.Add(time.Hour)),
			base:      t0.Add(45 * time.Minute),
			maxJitter: 2 * time.Minute,
			expiry:    t0.Add(time.Hour),
			reason:    "expiry",
		},
		"provider expiry earlier than max_age, default renew_at": {
			// A 10-minute token under a 30-day max_age: renewing 20% of 30
			// days before its expiry would make every new value due at once.
			cred:      withExpiry(issuedCred("g", store.Policy{MaxAge: 30 * d}, t0), t0.Add(10*time.Minute)),
			base:      t0.Add(8 * time.Minute),
			maxJitter: 24 * time.Second, // 5% of the 8-minute interval
			expiry:    t0.Add(10 * time.Minute),
			reason:    "expiry",
		},
		"renew_before longer than the provider's lifetime falls back to the default fraction": {
			cred:      withExpiry(issuedCred("h", store.Policy{MaxAge: 24 * time.Hour, RenewBefore: 2 * time.Hour}, t0), t0.Add(time.Hour)),
			base:      t0.Add(48 * time.Minute),
			maxJitter: 2 * time.Minute,
			expiry:    t0.Add(time.Hour),
			reason:    "expiry",
		},
		"provider expiry later than max_age is ignored": {
			cred:      withExpiry(issuedCred("i", store.Policy{MaxAge: time.Hour, RenewBefore: 15 * time.Minute}, t0), t0.Add(5*time.Hour)),
			base:      t0.Add(45 * time.Minute),
			maxJitter: 2 * time.Minute,
			expiry:    t0.Add(time.Hour),
			reason:    "max_age",
		},
		"cron @every 45m after the last rotation": {
			cred:      withLast(withSchedule(issuedCred("j", store.Policy{MaxAge: 30 * d}, t0), "@every 45m"), t0.Add(10*time.Minute)),
			base:      t0.Add(55 * time.Minute),
			maxJitter: 2 * time.Minute, // min(5% of 45m, 2m)
			expiry:    t0.Add(30 * d),
			reason:    "schedule",
		},
		"cron 0 3 * * * in UTC": {
			cred:      withSchedule(issuedCred("k", store.Policy{MaxAge: 30 * d}, t0), "0 3 * * *"),
			base:      time.Date(2025, 3, 11, 3, 0, 0, 0, time.UTC),
			maxJitter: 2 * time.Minute,
			expiry:    t0.Add(30 * d),
			reason:    "schedule",
		},
		"cron CRON_TZ=Europe/Berlin in winter": {
			cred:      withSchedule(issuedCred("l", store.Policy{MaxAge: 30 * d}, t0), "CRON_TZ=Europe/Berlin 0 3 * * *"),
			base:      time.Date(2025, 3, 11, 2, 0, 0, 0, time.UTC), // 03:00 CET
			maxJitter: 2 * time.Minute,
			expiry:    t0.Add(30 * d),
			reason:    "schedule",
		},
		"cron CRON_TZ=Europe/Berlin in summer": {
			cred:      withSchedule(issuedCred("m", store.Policy{MaxAge: 30 * d}, time.Date(2025, 7, 10, 10, 0, 0, 0, time.UTC)), "CRON_TZ=Europe/Berlin 0 3 * * *"),
			base:      time.Date(2025, 7, 11, 1, 0, 0, 0, time.UTC), // 03:00 CEST
			maxJitter: 2 * time.Minute,
			expiry:    time.Date(2025, 7, 10, 10, 0, 0, 0, time.UTC).Add(30 * d),
			reason:    "schedule",
		},
		"max_age earlier than the cron schedule wins": {
			cred:      withSchedule(issuedCred("n", store.Policy{MaxAge: time.Hour}, t0), "0 3 * * *"),
			base:      t0.Add(48 * time.Minute),
			maxJitter: 2 * time.Minute,
			expiry:    t0.Add(time.Hour),
			reason:    "max_age",
		},
		"window moves due to the next window start": {
			// due t0+24d = 2025-04-03 10:00 UTC, outside 02:00-05:00
			cred:      withWindow(issuedCred("o", store.Policy{MaxAge: 30 * d}, t0), "02:00", "05:00", ""),
			base:      time.Date(2025, 4, 4, 2, 0, 0, 0, time.UTC),
			maxJitter: 2 * time.Minute,
			expiry:    t0.Add(30 * d),
			reason:    "max_age",
			inWindow:  true,
		},
		"due inside the window is kept": {
			cred:      withWindow(issuedCred("p", store.Policy{MaxAge: 10 * time.Hour, RenewBefore: 9 * time.Hour}, t0), "09:00", "12:00", ""),
			base:      t0.Add(time.Hour),
			maxJitter: 2 * time.Minute,
			expiry:    t0.Add(10 * time.Hour),
			reason:    "max_age",
			inWindow:  true,
		},
		"window wrapping midnight: afternoon due moves to the evening start": {
			cred:      withWindow(issuedCred("q", store.Policy{MaxAge: 30 * d}, t0), "22:00", "04:00", ""),
			base:      time.Date(2025, 4, 3, 22, 0, 0, 0, time.UTC),
			maxJitter: 2 * time.Minute,
			expiry:    t0.Add(30 * d),
			reason:    "max_age",
			inWindow:  true,
		},
		"window wrapping midnight: due after midnight is inside": {
			cred:      withWindow(issuedCred("r", store.Policy{MaxAge: 30 * d, RenewBefore: 6 * d}, time.Date(2025, 3, 9, 1, 0, 0, 0, time.UTC)), "22:00", "04:00", ""),
			base:      time.Date(2025, 4, 2, 1, 0, 0, 0, time.UTC),
			maxJitter: 2 * time.Minute,
			expiry:    time.Date(2025, 4, 8, 1, 0, 0, 0, time.UTC),
			reason:    "max_age",
			inWindow:  true,
		},
		"window wrapping midnight: due just after the end waits for the evening": {
			cred:      withWindow(issuedCred("s", store.Policy{MaxAge: 30 * d, RenewBefore: 6 * d}, time.Date(2025, 3, 9, 4, 30, 0, 0, time.UTC)), "22:00", "04:00", ""),
			base:      time.Date(2025, 4, 2, 22, 0, 0, 0, time.UTC),
			maxJitter: 2 * time.Minute,
			expiry:    time.Date(2025, 4, 8, 4, 30, 0, 0, time.UTC),
			reason:    "max_age",
			inWindow:  true,
		},
		"window in Europe/Berlin on the spring-forward day": {
			// due 2025-03-29 12:00 UTC; 02:00 does not exist on 2025-03-30
			// in Berlin, the window opens at 03:00 CEST = 01:00 UTC.
			cred:      withWindow(issuedCred("t", store.Policy{MaxAge: 30 * d, RenewBefore: 6 * d}, time.Date(2025, 3, 5, 12, 0, 0, 0, time.UTC)), "02:00", "05:00", "Europe/Berlin"),
			base:      time.Date(2025, 3, 30, 1, 0, 0, 0, time.UTC),
			maxJitter: 2 * time.Minute,
			expiry:    time.Date(2025, 4, 4, 12, 0, 0, 0, time.UTC),
			reason:    "max_age",
			inWindow:  true,
		},
		"window that falls into the DST gap moves to the next day": {
			// 02:00-03:00 Berlin does not exist on 2025-03-30; the next
			// window is 2025-03-31 02:00 CEST = 00:00 UTC.
			cred:      withWindow(issuedCred("u", store.Policy{MaxAge: 30 * d, RenewBefore: 6 * d}, time.Date(2025, 3, 5, 12, 0, 0, 0, time.UTC)), "02:00", "03:00", "Europe/Berlin"),
			base:      time.Date(2025, 3, 31, 0, 0, 0, 0, time.UTC),
			maxJitter: 2 * time.Minute,
			expiry:    time.Date(2025, 4, 4, 12, 0, 0, 0, time.UTC),
			reason:    "max_age",
			inWindow:  true,
		},
		"window in Europe/Berlin on the fall-back day": {
			// due 2025-10-25 12:00 UTC; 02:30 happens twice on 2025-10-26;
			// either is inside the window.
			cred:      withWindow(issuedCred("v", store.Policy{MaxAge: 30 * d, RenewBefore: 6 * d}, time.Date(2025, 10, 1, 12, 0, 0, 0, time.UTC)), "02:30", "04:00", "Europe/Berlin"),
			base:      time.Date(2025, 10, 26, 2, 30, 0, 0, berlin),
			maxJitter: 2 * time.Minute,
			expiry:    time.Date(2025, 10, 31, 12, 0, 0, 0, time.UTC),
			reason:    "max_age",
			inWindow:  true,
		},
		"window is not used when it would pass expiry": {
			// due 10:45, expiry 11:00; the next window (02:00) is later.
			cred:      withWindow(issuedCred("w", store.Policy{MaxAge: time.Hour, RenewBefore: 15 * time.Minute}, t0), "02:00", "05:00", ""),
			base:      t0.Add(45 * time.Minute),
			maxJitter: 2 * time.Minute,
			expiry:    t0.Add(time.Hour),
			reason:    "max_age",
		},
		"jitter never leaves a short window": {
			cred:      withWindow(issuedCred("x", store.Policy{MaxAge: 30 * d}, t0), "02:00", "02:01", ""),
			base:      time.Date(2025, 4, 4, 2, 0, 0, 0, time.UTC),
			maxJitter: time.Minute,
			expiry:    t0.Add(30 * d),
			reason:    "max_age",
			inWindow:  true,
		},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			plan, err := rotation.Schedule(tt.cred, t0)
			if err != nil {
				t.Fatalf("Schedule: %v", err)
			}
			if plan.Reason != tt.reason {
				t.Errorf("Reason = %q, want %q", plan.Reason, tt.reason)
			}
			if !plan.Expiry.Equal(tt.expiry) {
				t.Errorf("Expiry = %v, want %v", plan.Expiry, tt.expiry)
			}
			if plan.Due.Location() != time.UTC {
				t.Errorf("Due is in %v, want UTC", plan.Due.Location())
			}
			j := plan.Due.Sub(tt.base)
			if tt.maxJitter == 0 && j != 0 {
				t.Errorf("Due = %v, want exactly %v", plan.Due, tt.base.UTC())
			}
			if tt.maxJitter > 0 && (j < 0 || j >= tt.maxJitter) {
				t.Errorf("Due = %v, want in [%v, %v) (base plus jitter below %v); off by %v", plan.Due, tt.base.UTC(), tt.base.Add(tt.maxJitter).UTC(), tt.maxJitter, j)
			}
			if !tt.expiry.IsZero() && !plan.Due.Before(tt.expiry) {
				t.Errorf("Due %v is not before expiry %v", plan.Due, tt.expiry)
			}
			if tt.inWindow && !inWindow(t, plan.Due, *tt.cred.Policy.Window) {
				t.Errorf("Due %v (%v local) is outside the window %+v", plan.Due, plan.Due.In(mustLoc(t, cmpOr(tt.cred.Policy.Window.Timezone, "UTC"))), *tt.cred.Policy.Window)
			}
			// The plan depends on the credential only, not on when it is computed
			// (except for a new credential, which is due now).
			if tt.reason != "new" {
				again, err := rotation.Schedule(tt.cred, t0.Add(17*time.Minute))
				if err != nil || !again.Due.Equal(plan.Due) || !again.Expiry.Equal(plan.Expiry) {
					t.Errorf("Schedule is not deterministic: %v then %v (%v)", plan, again, err)
				}
			}
		})
	}
}

func cmpOr(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

func TestScheduleErrors(t *testing.T) {
	t.Parallel()
	tests := map[string]store.Credential{
		"neither max_age nor schedule": issuedCred("a", store.Policy{}, t0),
		"invalid schedule":             issuedCred("b", store.Policy{MaxAge: time.Hour, Schedule: "every day"}, t0),
		"invalid window timezone":      issuedCred("c", store.Policy{MaxAge: 30 * 24 * time.Hour, Window: &store.Window{Start: "02:00", End: "03:00", Timezone: "Mars/Olympus"}}, t0),
		"invalid window start":         issuedCred("d", store.Policy{MaxAge: 30 * 24 * time.Hour, Window: &store.Window{Start: "2am", End: "03:00"}}, t0),
	}
	for name, c := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if plan, err := rotation.Schedule(c, t0); err == nil {
				t.Fatalf("Schedule = %+v, want an error", plan)
			}
		})
	}
}

// TestScheduleJitter checks the jitter over many credentials: bounded by
// min(5% of the interval, 2m), deterministic, and spread.
func TestScheduleJitter(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		pol   store.Policy
		base  time.Duration // due after issue, without jitter
		limit time.Duration
	}{
		"long interval is capped at 2m": {pol: store.Policy{MaxAge: 30 * 24 * time.Hour}, base: 24 * 24 * time.Hour, limit: 2 * time.Minute},
		"48m interval is capped at 2m":  {pol: store.Policy{MaxAge: time.Hour}, base: 48 * time.Minute, limit: 2 * time.Minute},
		"8m interval: 5% is 24s":        {pol: store.Policy{MaxAge: 10 * time.Minute}, base: 8 * time.Minute, limit: 24 * time.Second},
		"@every 1s: 5% is 50ms":         {pol: store.Policy{MaxAge: time.Hour, Schedule: "@every 1s"}, base: time.Second, limit: 50 * time.Millisecond},
		"@every 45m: capped at 2m":      {pol: store.Policy{MaxAge: 30 * 24 * time.Hour, Schedule: "@every 45m"}, base: 45 * time.Minute, limit: 2 * time.Minute},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			seen := map[time.Duration]bool{}
			const n = 200
			for i := range n {
				c := issuedCred(fmt.Sprintf("cred-%03d", i), tt.pol, t0)
				p1, err := rotation.Schedule(c, t0)
				if err != nil {
					t.Fatal(err)
				}
				p2, _ := rotation.Schedule(c, t0.Add(time.Hour))
				if !p1.Due.Equal(p2.Due) {
					t.Fatalf("%s: jitter is not deterministic: %v vs %v", c.ID, p1.Due, p2.Due)
				}
				j := p1.Due.Sub(t0.Add(tt.base))
				if j < 0 || j >= tt.limit {
					t.Fatalf("%s: jitter %v outside [0, %v)", c.ID, j, tt.limit)
				}
				seen[j] = true
			}
			if len(seen) < n/2 {
				t.Errorf("only %d distinct jitters over %d credentials; jitter does not spread them", len(seen), n)
			}
		})
	}
}

func TestEffectiveStatus(t *testing.T) {
	t.Parallel()
	due := t0.Add(time.Hour)
	exp := t0.Add(2 * time.Hour)
	cred := func(status store.Status, next, expires time.Time) store.Credential {
		return store.Credential{
			ID:      "c",
			Current: &store.Version{ID: "v", Stage: store.StageCurrent, CreatedAt: t0},
			State:   store.CredentialState{Status: status, NextRotationAt: next, ExpiresAt: expires, CurrentVersionID: "v"},
		}
	}
	noCurrent := func(status store.Status) store.Credential {
		return store.Credential{ID: "c", State: store.CredentialState{Status: status}}
	}
	tests := map[string]struct {
		c    store.Credential
		now  time.Time
		want store.Status
	}{
		"never rotated, no status":            {noCurrent(""), t0, store.StatusNew},
		"never rotated, stored new":           {noCurrent(store.StatusNew), t0, store.StatusNew},
		"never rotated, failing":              {noCurrent(store.StatusFailing), t0, store.StatusFailing},
		"before due":                          {cred(store.StatusHealthy, due, exp), t0, store.StatusHealthy},
		"stored due but not yet due":          {cred(store.StatusDue, due, exp), t0, store.StatusHealthy},
		"not scheduled":                       {cred(store.StatusHealthy, time.Time{}, time.Time{}), t0.Add(1000 * time.Hour), store.StatusHealthy},
		"at the due time":                     {cred(store.StatusHealthy, due, exp), due, store.StatusDue},
		"shortly after due":                   {cred(store.StatusHealthy, due, exp), due.Add(10 * time.Minute), store.StatusDue},
		"past half the time left to expiry":   {cred(store.StatusHealthy, due, exp), due.Add(31 * time.Minute), store.StatusOverdue},
		"no expiry, 9m past due":              {cred(store.StatusHealthy, due, time.Time{}), due.Add(9 * time.Minute), store.StatusDue},
		"no expiry, 11m past due":             {cred(store.StatusHealthy, due, time.Time{}), due.Add(11 * time.Minute), store.StatusOverdue},
		"at expiry":                           {cred(store.StatusHealthy, due, exp), exp, store.StatusExpired},
		"expired while failing":               {cred(store.StatusFailing, due, exp), exp.Add(time.Minute), store.StatusExpired},
		"expired while rotating":              {cred(store.StatusRotating, due, exp), exp.Add(time.Minute), store.StatusExpired},
		"expired while needing attention":     {cred(store.StatusNeedsAttention, time.Time{}, exp), exp.Add(time.Minute), store.StatusExpired},
		"needs attention before expiry":       {cred(store.StatusNeedsAttention, time.Time{}, exp), due.Add(50 * time.Minute), store.StatusNeedsAttention},
		"failing past due is still failing":   {cred(store.StatusFailing, due, exp), due.Add(50 * time.Minute), store.StatusFailing},
		"rotating past due is still rotating": {cred(store.StatusRotating, due, exp), due.Add(50 * time.Minute), store.StatusRotating},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := rotation.EffectiveStatus(tt.c, tt.now); got != tt.want {
				t.Errorf("EffectiveStatus at %v = %q, want %q", tt.now, got, tt.want)
			}
		})
	}
}
