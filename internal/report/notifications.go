package report

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// maxNotifications caps the deliveries the notifications section lists
// (the newest of the period); Summary.Notifications says when there were
// more.
const maxNotifications = 1000

// Notification is one delivery of a notification in the period, with every
// attempt (docs/notifications.md).
type Notification struct {
	ID          string                `json:"id"`
	Receiver    string                `json:"receiver"`
	State       string                `json:"state"`
	Events      int                   `json:"events"`
	Kinds       []string              `json:"kinds"`
	Credentials []string              `json:"credentials"`
	CreatedAt   time.Time             `json:"created_at"`
	FinishedAt  *time.Time            `json:"finished_at"`
	LastError   *string               `json:"last_error"`
	Attempts    []NotificationAttempt `json:"attempts"`
}

// NotificationAttempt is one attempt of a delivery.
type NotificationAttempt struct {
	Attempt int       `json:"attempt"`
	At      time.Time `json:"at"`
	Status  string    `json:"status"`
	Error   *string   `json:"error"`
}

// notifications reads the deliveries created in the period (the newest
// maxNotifications), keeping, under a selector, those naming a selected
// credential.
func (g *generator) notifications(ctx context.Context) ([]Notification, bool, error) {
	ds, err := g.st.ListNotifyDeliveries(ctx, store.DeliveryFilter{Since: g.opts.Since, Until: g.opts.Until, Limit: maxNotifications + 1})
	if err != nil {
		return nil, false, fmt.Errorf("reading notification deliveries: %w", err)
	}
	more := len(ds) > maxNotifications
	if more {
		ds = ds[:maxNotifications]
	}
	ids := make([]string, len(ds))
	for i, d := range ds {
		ids[i] = d.ID
	}
	attempts := map[string][]NotificationAttempt{}
	for i := 0; i < len(ids); i += 500 {
		as, err := g.st.ListNotifyAttempts(ctx, ids[i:min(i+500, len(ids))])
		if err != nil {
			return nil, false, fmt.Errorf("reading notification attempts: %w", err)
		}
		for _, a := range as {
			attempts[a.DeliveryID] = append(attempts[a.DeliveryID], NotificationAttempt{Attempt: a.Attempt, At: a.At.UTC(), Status: a.Status, Error: optString(a.Error)})
		}
	}
	out := make([]Notification, 0, len(ds))
	for _, d := range ds {
		n := Notification{ID: d.ID, Receiver: d.Receiver, State: d.State, Events: d.EventCount, Kinds: []string{}, Credentials: []string{},
			CreatedAt: d.CreatedAt.UTC(), LastError: optString(d.LastError), Attempts: attempts[d.ID]}
		if n.Attempts == nil {
			n.Attempts = []NotificationAttempt{}
		}
		if !d.FinishedAt.IsZero() {
			t := d.FinishedAt.UTC()
			n.FinishedAt = &t
		}
		var evs []struct {
			Kind       string `json:"kind"`
			Credential string `json:"credential"`
		}
		_ = json.Unmarshal(d.Events, &evs)
		for _, ev := range evs {
			if !slices.Contains(n.Kinds, ev.Kind) {
				n.Kinds = append(n.Kinds, ev.Kind)
			}
			if ev.Credential != "" && !slices.Contains(n.Credentials, ev.Credential) {
				n.Credentials = append(n.Credentials, ev.Credential)
			}
		}
		if g.selected != nil && !slices.ContainsFunc(n.Credentials, func(c string) bool { return g.selected[c] }) {
			continue
		}
		out = append(out, n)
	}
	return out, more, nil
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// notificationSection writes the notifications section.
func (g *generator) notificationSection(ctx context.Context, r renderer) error {
	ns, more, err := g.notifications(ctx)
	if err != nil {
		return err
	}
	if err := r.start(sectionNotifications); err != nil {
		return err
	}
	for _, n := range ns {
		g.stats.Notifications++
		if err := r.notification(n); err != nil {
			return err
		}
	}
	if more {
		g.stats.NotificationsTruncated = true
	}
	return r.finish(sectionNotifications)
}

// attemptsText renders the attempts of a delivery for the text formats.
func attemptsText(as []NotificationAttempt) string {
	parts := make([]string, len(as))
	for i, a := range as {
		parts[i] = strconv.Itoa(a.Attempt) + " " + a.Status
		if a.Error != nil {
			parts[i] += " (" + truncate(*a.Error, 80) + ")"
		}
	}
	return strings.Join(parts, "; ")
}

func (r *jsonRenderer) notification(n Notification) error { return r.row(n) }

func (r *csvRenderer) notification(n Notification) error {
	f := map[string]string{
		"id": n.ID, "credential": strings.Join(n.Credentials, ","), "outcome": n.State, "kind": strings.Join(n.Kinds, ","),
		"created_at": csvTime(&n.CreatedAt), "finished_at": csvTime(n.FinishedAt), "attempt": strconv.Itoa(len(n.Attempts)),
		"detail": cell(attemptsText(n.Attempts)), "receiver": n.Receiver,
	}
	if n.LastError != nil {
		f["error"] = cell(*n.LastError)
	}
	return r.record("notification", f)
}

func (r *mdRenderer) notification(n Notification) error {
	r.row()
	_, err := fmt.Fprintf(r.w, "| `%s` | %s | %s | %s | %s | %d | %s | %s |\n", mdCode(n.ID), mdText(n.Receiver), n.State,
		mdText(strings.Join(n.Kinds, ", ")), mdText(orDash(truncate(strings.Join(n.Credentials, ", "), 200))), n.Events,
		fmtTimePtr(&n.CreatedAt), mdText(orDash(attemptsText(n.Attempts))))
	return err
}

func (r *htmlRenderer) notification(n Notification) error {
	r.rows++
	_, err := fmt.Fprintf(r.w, "<tr><td><code>%s</code></td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%d</td><td>%s</td><td>%s</td></tr>\n",
		esc(n.ID), esc(n.Receiver), esc(n.State), esc(strings.Join(n.Kinds, ", ")), esc(orDash(truncate(strings.Join(n.Credentials, ", "), 200))),
		n.Events, timeHTML(&n.CreatedAt), esc(orDash(attemptsText(n.Attempts))))
	return err
}
