package report_test

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/report"
	"github.com/rotatorhq/rotator/internal/store"
)

// TestNotificationsSection: deliveries of the period appear with every
// attempt in each format; one outside the period and one of an unselected
// credential do not.
func TestNotificationsSection(t *testing.T) {
	t.Parallel()
	schema := loadSchema(t)
	eachDialect(t, func(t *testing.T, st store.Store, _ func(string)) {
		s := seed(t, st)
		ctx := t.Context()
		in := now.Add(-time.Hour)
		add := func(id, cred string, created time.Time, state string, attempts ...store.NotifyAttempt) {
			t.Helper()
			evs, _ := json.Marshal([]map[string]string{{"id": "ev-" + id, "kind": "rotation.rolled_back", "credential": cred}})
			err := st.InTx(ctx, func(tx store.Tx) error {
				d := store.NotifyDelivery{ID: id, Receiver: "oncall", GroupKey: "g", State: state, Events: evs, EventCount: 1,
					Attempts: len(attempts), CreatedAt: created, UpdatedAt: created, FinishedAt: created.Add(time.Minute)}
				if err := tx.CreateNotifyDelivery(ctx, d, nil); err != nil {
					return err
				}
				if err := tx.InsertNotifyAttempts(ctx, attempts...); err != nil {
					return err
				}
				return tx.UpdateNotifyDelivery(ctx, d)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		add("D-in", "failing-5", in, store.DeliveryDelivered,
			store.NotifyAttempt{DeliveryID: "D-in", Attempt: 1, At: in, Status: "retry", Error: "unexpected HTTP status 503 Service Unavailable"},
			store.NotifyAttempt{DeliveryID: "D-in", Attempt: 2, At: in.Add(time.Second), Status: "delivered"})
		add("D-old", "failing-5", now.Add(-60*24*time.Hour), store.DeliveryDelivered)
		add("D-data", "norunbook-7", in, store.DeliveryFailed,
			store.NotifyAttempt{DeliveryID: "D-data", Attempt: 1, At: in, Status: "failed", Error: "unexpected HTTP status 404 Not Found"})

		opts := report.Options{Now: now, RunbookDir: s.dir, Format: report.FormatJSON}
		var p struct {
			Notifications []report.Notification `json:"notifications"`
		}
		b := write(t, st, opts)
		decodeJSON(t, schema, b)
		if err := json.Unmarshal(b, &p); err != nil {
			t.Fatal(err)
		}
		got := byID(p.Notifications, func(n report.Notification) string { return n.ID })
		if len(p.Notifications) != 2 || got["D-data"].ID == "" || got["D-in"].ID == "" {
			t.Fatalf("notifications %+v", p.Notifications)
		}
		d := got["D-in"]
		if len(d.Attempts) != 2 || d.Attempts[0].Status != "retry" || !strings.Contains(*d.Attempts[0].Error, "503") ||
			d.Credentials[0] != "failing-5" || d.Kinds[0] != "rotation.rolled_back" {
			t.Fatalf("D-in %+v", d)
		}
		// A selector keeps the deliveries naming a selected credential.
		opts.Selector = map[string]string{"team": "data"}
		p.Notifications = nil
		_ = json.Unmarshal(write(t, st, opts), &p)
		if len(p.Notifications) != 1 || p.Notifications[0].ID != "D-data" {
			t.Fatalf("with team=data: %+v", p.Notifications)
		}
		opts.Selector = nil
		opts.Format = report.FormatMarkdown
		md := string(write(t, st, opts))
		if !strings.Contains(md, "## Notifications") || !strings.Contains(md, "`D-in`") || !strings.Contains(md, "1 retry (unexpected HTTP status 503") {
			t.Fatalf("markdown:\n%s", md[strings.Index(md, "## Notifications"):])
		}
		opts.Format = report.FormatHTML
		if page := string(write(t, st, opts)); !strings.Contains(page, `<section id="notifications">`) || !strings.Contains(page, "D-data") {
			t.Fatal("HTML lacks the notifications section")
		}
		opts.Format = report.FormatCSV
		recs, err := csv.NewReader(bytes.NewReader(write(t, st, opts))).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, r := range recs {
			if r[0] == "notification" {
				found++
				if r[len(r)-1] != "oncall" {
					t.Fatalf("receiver column: %v", r)
				}
			}
		}
		if found != 2 {
			t.Fatalf("%d notification records in CSV", found)
		}
	})
}
