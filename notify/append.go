package notify

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/rotatorhq/rotator/internal/jsonenc"
)

// The engine writes the events of every commit to the outbox as one JSON
// array (issue 12: the notification outbox on a rotation's critical path).
// encoding/json's reflective encoder was most of the cost of noting three
// events per rotation, so AppendEvents writes them by hand: the bytes are
// exactly json.Marshal's for each event (append_test.go compares them over
// varied events), so an event reads the same whichever wrote it.

// AppendEvents appends evs to dst as a JSON array, each element the bytes
// json.Marshal gives for it. It fails only where json.Marshal does (a time
// whose year is outside 0–9999), with json.Marshal's error.
func AppendEvents(dst []byte, evs ...Event) ([]byte, error) {
	dst = append(dst, '[')
	for i := range evs {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = AppendEvent(dst, &evs[i]); err != nil {
			return nil, err
		}
	}
	return append(dst, ']'), nil
}

// AppendEvent appends ev to dst as json.Marshal encodes it.
func AppendEvent(dst []byte, ev *Event) ([]byte, error) {
	if y := ev.Time.Year(); y < 0 || y > 9999 {
		_, err := json.Marshal(ev) // json.Marshal's error, word for word
		return nil, err
	}
	dst = append(dst, `{"id":`...)
	dst = jsonenc.AppendString(dst, ev.ID)
	dst = append(dst, `,"kind":`...)
	dst = jsonenc.AppendString(dst, string(ev.Kind))
	dst = append(dst, `,"time":"`...)
	dst = ev.Time.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	dst = appendField(dst, `,"credential":`, ev.CredentialID)
	dst = appendField(dst, `,"consumer":`, ev.Consumer)
	if len(ev.Labels) > 0 {
		dst = jsonenc.AppendStringMap(append(dst, `,"labels":`...), ev.Labels)
	}
	dst = appendField(dst, `,"run_id":`, ev.RunID)
	dst = appendField(dst, `,"trigger":`, ev.Trigger)
	dst = appendVersion(dst, `,"old_version":`, ev.OldVersion)
	dst = appendVersion(dst, `,"new_version":`, ev.NewVersion)
	dst = appendField(dst, `,"reason":`, ev.Reason)
	dst = append(dst, `,"summary":`...)
	dst = jsonenc.AppendString(dst, ev.Summary)
	dst = appendField(dst, `,"runbook":`, ev.Runbook)
	if l := ev.Links; l != nil {
		dst = append(dst, `,"links":{`...)
		mark := len(dst)
		dst = appendField(dst, `,"run":`, l.Run)
		dst = appendField(dst, `,"runbook":`, l.Runbook)
		if len(dst) > mark {
			dst = slices.Delete(dst, mark, mark+1) // the first field's comma
		}
		dst = append(dst, '}')
	}
	dst = appendField(dst, `,"phase":`, ev.Phase)
	if len(ev.Credentials) > 0 {
		dst = jsonenc.AppendStrings(append(dst, `,"credentials":`...), ev.Credentials)
	}
	return append(dst, '}'), nil
}

// appendField appends an omitempty string field (name includes the comma,
// the quotes and the colon).
func appendField(dst []byte, name, v string) []byte {
	if v == "" {
		return dst
	}
	return jsonenc.AppendString(append(dst, name...), v)
}

func appendVersion(dst []byte, name string, v *Version) []byte {
	if v == nil {
		return dst
	}
	dst = append(dst, name...)
	dst = append(dst, `{"id":`...)
	dst = jsonenc.AppendString(dst, v.ID)
	dst = appendField(dst, `,"fingerprint":`, v.Fingerprint)
	return append(dst, '}')
}
