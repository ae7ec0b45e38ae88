package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"

	"github.com/rotatorhq/rotator/internal/store"
)

// ActionExecLate is the audit action recorded when `rotator exec` could not
// restart its child before the previous version's grace period ended (the
// child never went idle): the child may have used a value no longer valid.
const ActionExecLate = "exec.late_cutover"

// Event is an audit event a delivery component records about a
// credential. Data is marshalled to a JSON object; it must hold no value.
type Event struct {
	Action       string
	CredentialID string
	Data         any
}

// Recorder records delivery events in the audit log. A Source that can
// reach the audit log implements it (Local does).
type Recorder interface {
	RecordEvent(ctx context.Context, ev Event) error
}

// RecordEvent implements Recorder: the event is inserted as the reader
// (LocalOptions.Reader) and sealed, as value.read events are.
func (l *Local) RecordEvent(ctx context.Context, ev Event) error {
	if ev.Action == "" || ev.CredentialID == "" {
		return errors.New("delivery: an event needs an action and a credential")
	}
	data, err := json.Marshal(ev.Data)
	if err != nil {
		return err
	}
	rec := store.AuditEvent{OccurredAt: l.opts.Now(), Actor: l.opts.Reader, Action: ev.Action, CredentialID: ev.CredentialID, Data: data}
	if err := l.opts.Store.InTx(ctx, func(tx store.Tx) error { return tx.InsertAuditEvents(ctx, rec) }); err != nil {
		return fmt.Errorf("recording %s for credential %q in the audit log: %w", ev.Action, ev.CredentialID, err)
	}
	l.sealMu.Lock()
	defer l.sealMu.Unlock()
	if _, err := l.sealer.Seal(context.WithoutCancel(ctx), 1); err != nil {
		l.opts.Logger.Warn("sealing the audit event failed; a running service or the next command seals it",
			slog.String("action", ev.Action), slog.String("credential", ev.CredentialID), slog.Any("error", err))
	}
	return nil
}

var _ Recorder = (*Local)(nil)
