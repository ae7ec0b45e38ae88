package notify

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"
)

// tricky are strings that exercise every branch of json.Marshal's string
// encoding: quotes and backslashes, every control character's form, the
// HTML characters, U+2028/U+2029, multi-byte runes, invalid UTF-8 (a lone
// continuation byte, a truncated rune, an overlong form) and DEL.
var tricky = []string{
	"", "plain", `quote " and \ backslash`, "tab\tnewline\ncr\rbs\bff\f", "\x00\x01\x1f nul and unit separator",
	"<script>&amp;</script>", "line\u2028para\u2029sep", "é ü 日本語 🔑", "bad \xff byte", "cut \xe6\x97", "overlong \xc0\xaf",
	"del \x7f", "a=b,c:d{}[]", "emoji 👩‍💻 zwj", "\u00a0nbsp", "trailing \\", "\"", "\\u0041 literal",
}

func randString(r *rand.Rand) string {
	if r.IntN(3) == 0 {
		return ""
	}
	s := tricky[r.IntN(len(tricky))]
	for r.IntN(3) == 0 {
		s += tricky[r.IntN(len(tricky))]
	}
	return s
}

func randEvent(r *rand.Rand) Event {
	locs := []*time.Location{time.UTC, time.FixedZone("plus", 5*3600+1800), time.FixedZone("minus", -8*3600)}
	ev := Event{
		ID: randString(r), Kind: Kind(randString(r)), CredentialID: randString(r), Consumer: randString(r),
		RunID: randString(r), Trigger: randString(r), Reason: randString(r), Summary: randString(r),
		Runbook: randString(r), Phase: randString(r),
		// Whole seconds, milliseconds, microseconds and nanoseconds.
		Time: time.Unix(r.Int64N(4e9), []int64{0, 1e6, 123456000, 1, 999999999}[r.IntN(5)]*int64(r.IntN(2))).In(locs[r.IntN(len(locs))]),
	}
	if r.IntN(10) == 0 {
		ev.Time = time.Time{}
	}
	if r.IntN(2) == 0 {
		ev.Kind = Kinds[r.IntN(len(Kinds))]
	}
	switch r.IntN(3) {
	case 0: // nil
	case 1:
		ev.Labels = map[string]string{}
	case 2:
		ev.Labels = map[string]string{}
		for range 1 + r.IntN(12) {
			ev.Labels[randString(r)] = randString(r)
		}
	}
	for _, v := range []**Version{&ev.OldVersion, &ev.NewVersion} {
		if r.IntN(3) > 0 {
			*v = &Version{ID: randString(r), Fingerprint: randString(r)}
		}
	}
	if r.IntN(3) == 0 {
		ev.Links = &Links{Run: randString(r), Runbook: randString(r)}
	}
	switch r.IntN(3) {
	case 0:
	case 1:
		ev.Credentials = []string{}
	case 2:
		for range 1 + r.IntN(5) {
			ev.Credentials = append(ev.Credentials, randString(r))
		}
	}
	return ev
}

// TestAppendEventsIsMarshal: the hand-written encoder gives json.Marshal's
// bytes for every event, and the array of a commit is those bytes joined.
func TestAppendEventsIsMarshal(t *testing.T) {
	t.Parallel()
	// A field added to Event must be added to AppendEvent (and to
	// randEvent): this count is the reminder.
	if n := reflect.TypeFor[Event]().NumField(); n != 16 {
		t.Fatalf("Event has %d fields; AppendEvent writes 16: update it, randEvent and this count", n)
	}
	r := rand.New(rand.NewPCG(12, 2026))
	for i := range 20000 {
		ev := randEvent(r)
		want, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := AppendEvent(nil, &ev)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("event %d:\nAppendEvent  %s\njson.Marshal %s", i, got, want)
		}
	}
	evs := []Event{randEvent(r), randEvent(r), randEvent(r)}
	var want []byte
	for i, ev := range evs {
		b, _ := json.Marshal(ev)
		want = append(append(want, "[,"[min(i, 1)]), b...)
	}
	want = append(want, ']')
	got, err := AppendEvents([]byte("prefix"), evs...)
	if err != nil || string(got) != "prefix"+string(want) {
		t.Fatalf("AppendEvents = %s, %v\nwant prefix%s", got, err, want)
	}
	var back []Event
	if err := json.Unmarshal(got[len("prefix"):], &back); err != nil || len(back) != 3 {
		t.Fatalf("the array does not decode: %v", err)
	}
	if got, err := AppendEvents(nil); err != nil || string(got) != "[]" {
		t.Fatalf("no events = %s, %v", got, err)
	}
}

// TestAppendEventBadTime: a time json.Marshal refuses fails alike.
func TestAppendEventBadTime(t *testing.T) {
	t.Parallel()
	ev := Event{ID: "x", Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}
	_, want := json.Marshal(ev)
	if _, err := AppendEvents(nil, ev); err == nil || want == nil || err.Error() != want.Error() {
		t.Fatalf("AppendEvents = %v, json.Marshal = %v", err, want)
	}
}

func BenchmarkAppendEvents(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 2))
	evs := []Event{randEvent(r), randEvent(r), randEvent(r)}
	b.Run("append", func(b *testing.B) {
		var buf []byte
		for b.Loop() {
			buf, _ = AppendEvents(buf[:0], evs...)
		}
	})
	b.Run("json.Marshal", func(b *testing.B) {
		for b.Loop() {
			for i := range evs {
				_, _ = json.Marshal(evs[i])
			}
		}
	})
}
