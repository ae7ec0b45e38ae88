package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/rotatorhq/rotator/internal/audit"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
)

// ActionValueRead is the audit action of a delivered value.
const ActionValueRead = "value.read"

// DefaultLocalPoll is how often a Local source looks at the current
// versions of the credentials it watches: one query for all of them.
const DefaultLocalPoll = time.Second

// LocalOptions configures a Local source.
type LocalOptions struct {
	Store   store.Store
	Keyring secret.Keyring
	// Reader names who reads, as recorded in value.read events (for
	// example "uid:1000 (alice)").
	Reader string
	// Poll is how often the source reads the current versions of the
	// credentials its watches wait on (DefaultLocalPoll when zero).
	Poll time.Duration
	// Now is the clock of audit events (time.Now when nil).
	Now    func() time.Time
	Logger *slog.Logger
}

// Local reads values from the store on this host, with the master key at
// hand. It seals the value.read events it records (sealing beside the
// service's sealer is safe), so a host without a running service keeps an
// audit log that verifies.
type Local struct {
	opts   LocalOptions
	sealer *audit.Sealer
	sealMu sync.Mutex
	poller *poller
}

// NewLocal returns a Local source. The store stays the caller's: Close does
// not close it.
func NewLocal(opts LocalOptions) (*Local, error) {
	if opts.Store == nil || opts.Keyring.ActiveKeyID() == "" {
		return nil, errors.New("delivery: the local source needs a store and a keyring")
	}
	if opts.Poll <= 0 {
		opts.Poll = DefaultLocalPoll
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Reader == "" {
		opts.Reader = "local"
	}
	return &Local{opts: opts, sealer: audit.NewSealer(opts.Store, audit.SealerOptions{Now: opts.Now}),
		poller: newPoller(opts.Store, opts.Poll, opts.Logger)}, nil
}

// Read implements Source.
func (l *Local) Read(ctx context.Context, req ReadRequest) (Current, error) {
	c, err := l.opts.Store.GetCredential(ctx, req.CredentialID)
	if err != nil {
		return Current{}, l.readError(req.CredentialID, err)
	}
	return l.open(ctx, c, req.Purpose)
}

// Watch implements Source. It reads the credential, and while its current
// version is AfterVersionID waits for the source's poller, which reads the
// current versions of every credential watched in this process in one
// query per interval.
func (l *Local) Watch(ctx context.Context, req WatchRequest) (Current, error) {
	for {
		c, err := l.opts.Store.GetCredential(ctx, req.CredentialID)
		switch {
		case err != nil && ctx.Err() != nil:
			return Current{}, ctx.Err()
		case err != nil:
			return Current{}, l.readError(req.CredentialID, err)
		case c.Current != nil && c.Current.ID != req.AfterVersionID:
			return l.open(ctx, c, req.Purpose)
		}
		seen := ""
		if c.Current != nil {
			seen = c.Current.ID
		}
		changed := l.poller.subscribe(req.CredentialID, seen)
		select {
		case <-ctx.Done():
			l.poller.unsubscribe(req.CredentialID)
			return Current{}, ctx.Err()
		case <-changed:
			l.poller.unsubscribe(req.CredentialID)
		}
	}
}

// Close implements Source.
func (l *Local) Close() error { return nil }

func (l *Local) readError(id string, err error) error {
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("credential %q: %w", id, ErrNotFound)
	}
	return fmt.Errorf("reading credential %q: %w", id, err)
}

// open unseals c's current version and records the read.
func (l *Local) open(ctx context.Context, c store.Credential, purpose string) (Current, error) {
	v := c.Current
	if v == nil {
		return Current{}, fmt.Errorf("credential %q: %w (rotate it once: rotator rotate %s --wait)", c.ID, ErrNoValue, c.ID)
	}
	val, err := l.opts.Keyring.Open(v.CredentialID, v.ID, v.KeyID, v.Sealed)
	if err != nil {
		return Current{}, fmt.Errorf("opening version %s of credential %q: %w", v.ID, c.ID, err)
	}
	cur := Current{
		CredentialID: c.ID, VersionID: v.ID, Fingerprint: v.Fingerprint,
		ExpiresAt: v.ExpiresAt, NextCutoverAt: c.State.NextRotationAt, Value: val,
	}
	if err := l.record(ctx, cur, purpose); err != nil {
		return Current{}, err
	}
	return cur, nil
}

// record writes the value.read event and seals it.
func (l *Local) record(ctx context.Context, cur Current, purpose string) error {
	data, err := json.Marshal(ReadEvent{Version: cur.VersionID, Fingerprint: cur.Fingerprint, Reader: l.opts.Reader, Via: "local", Purpose: purpose})
	if err != nil {
		return err
	}
	ev := store.AuditEvent{OccurredAt: l.opts.Now(), Actor: l.opts.Reader, Action: ActionValueRead, CredentialID: cur.CredentialID, Data: data}
	if err := l.opts.Store.InTx(ctx, func(tx store.Tx) error { return tx.InsertAuditEvents(ctx, ev) }); err != nil {
		return fmt.Errorf("recording the read of credential %q in the audit log (the value is not handed out unrecorded): %w", cur.CredentialID, err)
	}
	l.sealMu.Lock()
	defer l.sealMu.Unlock()
	if _, err := l.sealer.Seal(context.WithoutCancel(ctx), 1); err != nil {
		l.opts.Logger.Warn("sealing the value.read audit event failed; a running service or the next command seals it",
			slog.String("credential", cur.CredentialID), slog.Any("error", err))
	}
	return nil
}

// ReadEvent is the data of a value.read audit event: who read which version
// of a credential, how and why; never the value.
type ReadEvent struct {
	Version     string `json:"version"`
	Fingerprint string `json:"fingerprint"`
	// Reader is the reader's identity: "uid:N (name)" for a local process,
	// "token:ID (name)" for an API token.
	Reader string `json:"reader"`
	// Via is "local", "socket" or "api".
	Via     string `json:"via"`
	Purpose string `json:"purpose,omitempty"`
}

var _ Source = (*Local)(nil)
