package audit

import (
	"encoding/json"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// Record is an audit event as `rotator audit list -o json` and reports show
// it. Field names are part of the output contract (DESIGN.md §12). Data
// holds fingerprints and ids, never secret values.
type Record struct {
	ID         int64           `json:"id"`
	Seq        *int64          `json:"seq"`
	OccurredAt time.Time       `json:"occurred_at"`
	Actor      string          `json:"actor"`
	Action     string          `json:"action"`
	Credential *string         `json:"credential"`
	Run        *string         `json:"run"`
	Data       json.RawMessage `json:"data"`
	PrevHash   *string         `json:"prev_hash"`
	Hash       *string         `json:"hash"`
	SealedAt   *time.Time      `json:"sealed_at"`
}

// NewRecord renders an event. Unsealed events have a null seq, hashes and
// sealed_at.
func NewRecord(ev store.AuditEvent) Record {
	r := Record{
		ID: ev.ID, OccurredAt: ev.OccurredAt.UTC(), Actor: ev.Actor, Action: ev.Action,
		Credential: optional(ev.CredentialID), Run: optional(ev.RunID), Data: ev.Data,
	}
	if len(r.Data) == 0 {
		r.Data = json.RawMessage("null")
	} else if c, err := CanonicalJSON(ev.Data); err == nil {
		r.Data = c
	} else {
		// Not JSON (only a hand edit can do that): show it as a string
		// rather than break the output.
		r.Data, _ = json.Marshal(string(ev.Data))
	}
	if ev.Seq > 0 {
		seq := ev.Seq
		r.Seq = &seq
		r.PrevHash, r.Hash = optional(ev.PrevHash), optional(ev.Hash)
		if !ev.SealedAt.IsZero() {
			t := ev.SealedAt.UTC()
			r.SealedAt = &t
		}
	}
	return r
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
