package migrations_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/notify"
)

// TestNotifyOutboxDown checks 00012's Down: the events still in
// notify_outbox move into notify_events under their own ids, with their
// own times to the microsecond (whole seconds, fractions of 1 to 9 digits,
// an offset), their columns, and their payloads byte for byte; an event
// already in notify_events is kept as it was.
func TestNotifyOutboxDown(t *testing.T) {
	for _, tc := range []struct {
		dbCase
		micros string // occurred_at as unix microseconds
		ph     func(int) string
	}{
		{pgCase, "(extract(epoch FROM occurred_at) * 1000000)::bigint", func(i int) string { return "$" + string(rune('0'+i)) }},
		{sqliteCase, "occurred_at", func(int) string { return "?" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, p := tc.open(t)
			ctx := t.Context()
			if _, err := p.UpTo(ctx, 12); err != nil {
				t.Fatalf("up to 12: %v", err)
			}
			base := time.Date(2026, 12, 5, 13, 40, 7, 0, time.UTC)
			evs := []notify.Event{
				{ID: "01EVA", Kind: notify.KindStaged, Time: base, CredentialID: "db/main", RunID: "R1",
					Labels: map[string]string{"team": `"quoted" <b>&`, "ü": "日本\u2028"}, Summary: "tab\there \x01",
					NewVersion: &notify.Version{ID: "V2", Fingerprint: "fp"}},
				{ID: "01EVB", Kind: notify.KindCutOver, Time: base.Add(123456 * time.Microsecond), CredentialID: "db/main", RunID: "R1", Summary: "b"},
				{ID: "01EVC", Kind: notify.KindRetired, Time: base.Add(5 * time.Millisecond).In(time.FixedZone("x", -(7*3600 + 30*60))), Summary: "no credential, no run"},
			}
			other := []notify.Event{
				{ID: "01EVD", Kind: notify.KindRunFailed, Time: base.Add(100 * time.Millisecond), CredentialID: "c2", Summary: "d"},
				{ID: "01EVE", Kind: notify.KindRunFailed, Time: base.Add(time.Second + 1001*time.Microsecond), CredentialID: "c3", Summary: "e"},
			}
			exec := func(q string, args ...any) {
				t.Helper()
				if _, err := db.ExecContext(ctx, q, args...); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			ins := `INSERT INTO notify_outbox (id, occurred_at, events) VALUES (` + tc.ph(1) + `, ` + tc.ph(2) + `, ` + tc.ph(3) + `)`
			at := func(tm time.Time) any {
				if tc.name == "sqlite" {
					return tm.UnixMicro()
				}
				return tm
			}
			for _, row := range [][]notify.Event{evs, other} {
				b, err := notify.AppendEvents(nil, row...)
				if err != nil {
					t.Fatal(err)
				}
				exec(ins, row[0].ID, at(row[len(row)-1].Time), string(b))
			}
			// 01EVD is in notify_events already (routed): it stays as it is.
			exec(`INSERT INTO notify_events (id, kind, occurred_at, payload, routed_at) VALUES (`+tc.ph(1)+`, 'rotation.failed', `+tc.ph(2)+`, '{"kept":true}', `+tc.ph(3)+`)`,
				"01EVD", at(base), at(base))

			if _, err := p.DownTo(ctx, 11); err != nil {
				t.Fatalf("down to 11: %v", err)
			}
			rows, err := db.QueryContext(ctx, `SELECT id, kind, `+tc.micros+`, coalesce(credential_id, ''), coalesce(run_id, ''), payload FROM notify_events ORDER BY id`)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			want := append(append([]notify.Event(nil), evs...), other...)
			n := 0
			for rows.Next() {
				var id, kind, cred, run, payload string
				var micros int64
				if err := rows.Scan(&id, &kind, &micros, &cred, &run, &payload); err != nil {
					t.Fatal(err)
				}
				if n >= len(want) {
					t.Fatalf("an extra row %s", id)
				}
				ev := want[n]
				n++
				if id == "01EVD" {
					if payload != `{"kept":true}` {
						t.Errorf("the event already in notify_events was replaced: %s", payload)
					}
					continue
				}
				b, _ := json.Marshal(ev)
				if id != ev.ID || kind != string(ev.Kind) || micros != ev.Time.UnixMicro() || cred != ev.CredentialID || run != ev.RunID || payload != string(b) {
					t.Errorf("row %s %s %d %q %q\n%s\nwant %s %s %d %q %q\n%s", id, kind, micros, cred, run, payload,
						ev.ID, ev.Kind, ev.Time.UnixMicro(), ev.CredentialID, ev.RunID, b)
				}
			}
			if err := rows.Err(); err != nil {
				t.Fatal(err)
			}
			if n != len(want) {
				t.Fatalf("%d events in notify_events after down, want %d", n, len(want))
			}
			if _, err := p.UpTo(ctx, 12); err != nil {
				t.Fatalf("up to 12 again: %v", err)
			}
		})
	}
}
