package outbox

import (
	"context"
	"encoding/json"
	"slices"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/notify"
)

// DeliveryView is a delivery as `rotator notify list -o json` and reports
// show it (field names are stable).
type DeliveryView struct {
	ID          string        `json:"id"`
	Receiver    string        `json:"receiver"`
	Group       string        `json:"group"`
	State       string        `json:"state"`
	Events      int           `json:"events"`
	Kinds       []string      `json:"kinds"`
	Credentials []string      `json:"credentials"`
	Runs        []string      `json:"runs"`
	Attempts    []AttemptView `json:"attempts"`
	LastError   *string       `json:"last_error"`
	CreatedAt   time.Time     `json:"created_at"`
	FinishedAt  *time.Time    `json:"finished_at"`
}

// AttemptView is one attempt of a delivery.
type AttemptView struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Status  string    `json:"status"`
	Error   *string   `json:"error"`
}

// List returns deliveries (newest first) with their attempts.
func List(ctx context.Context, st store.Reader, f store.DeliveryFilter) ([]DeliveryView, error) {
	ds, err := st.ListNotifyDeliveries(ctx, f)
	if err != nil {
		return nil, err
	}
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	attempts := map[string][]AttemptView{}
	for start := 0; start < len(ids); start += 500 {
		as, err := st.ListNotifyAttempts(ctx, ids[start:min(start+500, len(ids))])
		if err != nil {
			return nil, err
		}
		for _, a := range as {
			attempts[a.DeliveryID] = append(attempts[a.DeliveryID], AttemptView{Attempt: a.Attempt, At: a.At.UTC(), Status: a.Status, Error: strPtr(a.Error)})
		}
	}
	out := make([]DeliveryView, 0, len(ds))
	for _, d := range ds {
		v := DeliveryView{ID: d.ID, Receiver: d.Receiver, Group: d.GroupKey, State: d.State, Events: d.EventCount,
			Kinds: []string{}, Credentials: []string{}, Runs: []string{}, Attempts: attempts[d.ID], LastError: strPtr(d.LastError), CreatedAt: d.CreatedAt.UTC()}
		if v.Attempts == nil {
			v.Attempts = []AttemptView{}
		}
		if !d.FinishedAt.IsZero() {
			t := d.FinishedAt.UTC()
			v.FinishedAt = &t
		}
		var evs []notify.Event
		if json.Unmarshal(d.Events, &evs) == nil {
			for _, ev := range evs {
				v.Kinds = appendNew(v.Kinds, string(ev.Kind))
				if ev.CredentialID != "" {
					v.Credentials = appendNew(v.Credentials, ev.CredentialID)
				}
				if ev.RunID != "" {
					v.Runs = appendNew(v.Runs, ev.RunID)
				}
			}
		}
		out = append(out, v)
	}
	return out, nil
}

func appendNew(s []string, v string) []string {
	if slices.Contains(s, v) {
		return s
	}
	return append(s, v)
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
