package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/rotation"
)

// emergencyHorizon is how far back Summarize looks for emergencies that
// have not been summarised.
const emergencyHorizon = 48 * time.Hour

// Summarize writes the rotation.emergency "summary" of every emergency
// whose runs have all ended: how many succeeded, which failed. Its id is
// the start event's id with "-summary", so it is written once however many
// leaders look.
func (d *Dispatcher) Summarize(ctx context.Context) error {
	now := d.now()
	rows, err := d.opts.Store.ListNotifyEvents(ctx, string(notify.KindEmergency), now.Add(-emergencyHorizon))
	if err != nil {
		return err
	}
	done := map[string]bool{}
	var started []notify.Event
	for _, row := range rows {
		if id, ok := strings.CutSuffix(row.ID, "-summary"); ok {
			done[id] = true
			continue
		}
		var ev notify.Event
		if json.Unmarshal(row.Payload, &ev) == nil && ev.Phase == "started" {
			started = append(started, ev)
		}
	}
	for _, ev := range started {
		if done[ev.ID] || len(ev.Credentials) == 0 {
			continue
		}
		sum, ok, err := d.summary(ctx, ev, now)
		if err != nil || !ok {
			return err
		}
		err = rotation.WriteEvents(ctx, d.opts.Store, sum)
		if err != nil && !errors.Is(err, store.ErrConflict) {
			return err
		}
	}
	return nil
}

// summary builds the summary of an emergency once every credential's
// emergency run (the latest since the start) has ended.
func (d *Dispatcher) summary(ctx context.Context, start notify.Event, now time.Time) (notify.Event, bool, error) {
	latest := map[string]store.Run{}
	for i := 0; i < len(start.Credentials); i += 500 {
		runs, err := d.opts.Store.ListRuns(ctx, store.RunFilter{CredentialIDs: start.Credentials[i:min(i+500, len(start.Credentials))],
			Trigger: store.TriggerEmergency, Since: start.Time.Add(-time.Minute)})
		if err != nil {
			return notify.Event{}, false, err
		}
		for _, r := range runs { // newest first
			if _, seen := latest[r.CredentialID]; !seen {
				latest[r.CredentialID] = r
			}
		}
	}
	var failed []string
	succeeded := 0
	for _, c := range start.Credentials {
		r, ok := latest[c]
		if !ok || !rotation.State(r.State).Terminal() {
			return notify.Event{}, false, nil
		}
		if r.State == string(rotation.StateSucceeded) {
			succeeded++
		} else {
			failed = append(failed, c)
		}
	}
	slices.Sort(failed)
	text := fmt.Sprintf("emergency rotation of %d credentials finished: %d succeeded, %d failed", len(start.Credentials), succeeded, len(failed))
	if len(failed) > 0 {
		text += ": " + strings.Join(failed, ", ")
	}
	ev := notify.Event{ID: start.ID + "-summary", Kind: notify.KindEmergency, Time: now, Phase: "summary", Reason: start.Reason,
		Trigger: start.Trigger, Credentials: start.Credentials, Summary: text}
	if len(start.Credentials) == 1 {
		ev.CredentialID = start.Credentials[0]
	}
	return ev, true, nil
}
