// Package store defines the persistence contract of rotator: providers,
// credentials, versions, runs, steps and audit events. Two implementations
// satisfy it, internal/store/postgres (pgx/v5) and internal/store/sqlite
// (modernc.org/sqlite); internal/store/storetest is the conformance suite
// both pass.
//
// The store holds no business logic: it does not compute due times, diffs or
// state transitions. It does enforce the invariants that must hold across
// processes: at most one active run per credential and at most one current
// version per credential.
package store

import (
	"context"
	"errors"
	"time"
)

// Sentinel errors.
var (
	// ErrNotFound is returned when a row does not exist.
	ErrNotFound = errors.New("not found")
	// ErrActiveRun is returned by InsertRun when the credential already has
	// an active run.
	ErrActiveRun = errors.New("credential already has an active run")
	// ErrConflict is returned when a write violates another constraint.
	ErrConflict = errors.New("conflict")
)

// Dialect names a store implementation.
type Dialect string

// Dialects.
const (
	DialectPostgres Dialect = "postgres"
	DialectSQLite   Dialect = "sqlite"
)

// Store is a database holding rotator's state.
type Store interface {
	Reader
	// Dialect names the implementation.
	Dialect() Dialect
	// Migrate applies every pending migration (idempotent), then runs each
	// of also (another component's migrations, such as River's, on the same
	// database), all under one migration lock: a session advisory lock on
	// Postgres, a lock file beside the database on SQLite. Processes started
	// together on an empty database therefore migrate one after another, the
	// later ones finding nothing to do. An error of also is returned as is.
	Migrate(ctx context.Context, also ...func(ctx context.Context) error) error
	// InTx runs fn in one transaction, committing if it returns nil and
	// rolling back otherwise. fn may be called again on a serialization
	// failure, so it must not have side effects outside the transaction.
	InTx(ctx context.Context, fn func(tx Tx) error) error
	// InPipelinedTx is InTx for a transaction whose writes need not be
	// checked one by one: where the database can (Postgres), the begin, the
	// writes and the commit are sent together when fn returns, in one round
	// trip (a read inside fn sends what is queued before it). The error of a write (a
	// conflict, a row not found) may then be returned by InPipelinedTx
	// instead of by the write; either way nothing is committed.
	InPipelinedTx(ctx context.Context, fn func(tx Tx) error) error
	// GetRunWork reads what executing a run needs, in one round trip on
	// Postgres: the run, its credential and the credential's pending and
	// previous versions.
	GetRunWork(ctx context.Context, runID string) (RunWork, error)
	// ClaimRuns leases the given active runs to executor until the time
	// until, where no other executor holds an unexpired lease (now is the
	// caller's clock); it returns the ids it leased, renewing the caller's
	// own leases. Leases never change a run's state or updated_at.
	ClaimRuns(ctx context.Context, ids []string, executor string, now, until time.Time) ([]string, error)
	// ReleaseRuns ends executor's leases on the given runs (all of its
	// runs when ids is empty).
	ReleaseRuns(ctx context.Context, executor string, ids []string) error
	// Handle returns the underlying *pgxpool.Pool or *sql.DB, for River.
	Handle() any
	// Close releases the connections.
	Close() error
}

// CredentialFilter selects credentials. Zero fields match everything.
type CredentialFilter struct {
	IDs      []string
	Consumer string
	// Labels must all match (k=v).
	Labels map[string]string
	// Provider selects credentials of one provider.
	Provider string
	// DueBefore selects credentials with next_rotation_at <= DueBefore.
	DueBefore time.Time
	// Idle leaves out credentials that have an active run.
	Idle bool
	// ExcludeStatuses leaves out credentials in any of these statuses.
	ExcludeStatuses []Status
	// OrderByDue orders by next_rotation_at (unscheduled last), then id,
	// instead of by id.
	OrderByDue bool
	// Limit caps the number returned; 0 means no limit.
	Limit int
	// AfterID pages: only ids greater than AfterID (for id order).
	AfterID string
	// IncludeDeleted lists deleted credentials too (their versions keep
	// their sealed values, for a revival); by default only live ones.
	IncludeDeleted bool
	// Summary leaves out what a listing shows not (view.NewCredential):
	// the returned credentials have no Settings, Policy.Window or
	// Targets, and their current version no Sealed value. Lists of many
	// credentials are cheaper so (those are the largest columns to send
	// and decode); anything that rotates or delivers reads them whole.
	// Nor do they have their current version's KeyID and RetiredAt.
	Summary bool
	// Stamps fills each credential's Stamp (where the store has stamps:
	// see Reader.CredentialStamps).
	Stamps bool
}

// RunFilter selects runs. Zero fields match everything.
type RunFilter struct {
	// IDs selects runs by id.
	IDs []string
	// IDPrefix selects runs whose id starts with it (exactly; ids are
	// upper-case ULIDs).
	IDPrefix     string
	CredentialID string
	// CredentialIDs selects runs of any of these credentials.
	CredentialIDs []string
	State         string
	Trigger       Trigger
	ActiveOnly    bool
	// Since (inclusive) and Until (exclusive) bound CreatedAt.
	Since time.Time
	Until time.Time
	// BeforeCreatedAt and BeforeID page (keyset): with BeforeCreatedAt set,
	// only runs after (BeforeCreatedAt, BeforeID) in the list's order,
	// that is created earlier, or at the same time with a smaller id.
	BeforeCreatedAt time.Time
	BeforeID        string
	Limit           int
}

// AuditFilter selects audit events. Zero fields match everything.
type AuditFilter struct {
	CredentialID string
	RunID        string
	// Since (inclusive) and Until (exclusive) bound OccurredAt.
	Since time.Time
	Until time.Time
	// AfterSeq selects sealed events with Seq > AfterSeq, in chain order.
	// With AfterSeq 0 and Unsealed false a scan returns the sealed events
	// in chain order, then the unsealed ones in insertion order.
	AfterSeq int64
	// Unsealed selects only events without a Seq, in insertion order.
	Unsealed bool
	Limit    int
	// Newest, with Limit, selects the last Limit events of that order (the
	// most recent), still delivered in that order.
	Newest bool
}

// RunAdvance is one committed transition of a run (Tx.AdvanceRun): the
// run as it is after the transition, what the stored run must still be,
// and the step rows and audit events that describe the transition.
type RunAdvance struct {
	Run           Run
	FromState     string
	FromUpdatedAt time.Time
	Steps         []Step
	Events        []AuditEvent
}

// RunWork is a run with what executing it needs (Store.GetRunWork).
type RunWork struct {
	Run Run
	// Credential is the run's live credential with Current filled; nil
	// when it was removed from the inventory.
	Credential *Credential
	// Pending and Previous are the credential's versions in those stages,
	// newest first.
	Pending, Previous []Version
	// ProviderHash is the spec hash of the credential's provider as stored
	// now, and TargetHashes those of its live targets by name: the
	// configuration the run starts with.
	ProviderHash string
	TargetHashes map[string]string
}

// Reader reads state. Reads return ErrNotFound (wrapped) for a missing row.
type Reader interface {
	ListProviders(ctx context.Context) ([]Provider, error)
	GetProvider(ctx context.Context, name string) (Provider, error)
	ListTargets(ctx context.Context) ([]Target, error)
	GetTarget(ctx context.Context, name string) (Target, error)
	// GetCredential returns a live (not deleted) credential with Current filled.
	GetCredential(ctx context.Context, id string) (Credential, error)
	// ListCredentials returns live credentials ordered by id, with Current filled.
	ListCredentials(ctx context.Context, f CredentialFilter) ([]Credential, error)
	// CredentialStamps returns the id and stamp of each credential f
	// selects, in ListCredentials's order and up to f.Limit (f.Summary
	// and f.Stamps do not matter), reading no more than that: a page of
	// stamps costs a fraction of a page of credentials. A stamp changes
	// whenever anything a summary (CredentialFilter.Summary) shows of the
	// credential may have changed: a credential read with its stamp
	// (CredentialFilter.Stamps) whose stamp is still the same reads the
	// same as a summary now. ok is false where the store has no stamps
	// (SQLite), with no query made. Stamps are Postgres's row versions
	// (xmin, migration 00013): they repeat only after some four billion
	// transactions, so whoever keeps summaries by stamp must not keep them
	// for long (hours, not weeks), nor across a change of database.
	CredentialStamps(ctx context.Context, f CredentialFilter) (stamps []CredentialStamp, ok bool, err error)
	// ListCredentialHeads returns the CredentialHead of every live
	// credential, ordered by id, in one query.
	ListCredentialHeads(ctx context.Context) ([]CredentialHead, error)
	// MetricsSnapshot reads what the service's gauges show: every live
	// credential's gauge fields (one query, joined with its current
	// version), the number of active runs and of unsealed audit events.
	MetricsSnapshot(ctx context.Context) (MetricsSnapshot, error)
	// ListCredentialsRanked returns one page of live credentials, with
	// Current filled, in RankKey order after f.After (keyset paging: each
	// page costs the same, however deep). They are summaries, as
	// CredentialFilter.Summary reads them (for the dashboard's list).
	ListCredentialsRanked(ctx context.Context, f RankedFilter) ([]Credential, error)
	// Counts returns the totals of Counts, with Due and Expired as of now,
	// in two statements.
	Counts(ctx context.Context, now time.Time) (Counts, error)
	// Backlog reads what waits for the service's leader, with Due as of
	// now, in one statement: each count scans what it counts (the
	// outbox's rows, the unsealed audit events, the unrouted events'
	// index, the due credentials' index), which are few while a leader
	// works.
	Backlog(ctx context.Context, now time.Time) (Backlog, error)
	GetVersion(ctx context.Context, id string) (Version, error)
	// ListVersions returns a credential's versions, newest first, optionally
	// only those in the given stages.
	ListVersions(ctx context.Context, credentialID string, stages ...Stage) ([]Version, error)
	// SealedKeyIDs returns, sorted, the distinct ids of the master keys
	// under which sealed values exist: the KeyID of every version, of any
	// credential (deleted ones included), whose sealed value is not empty,
	// and of every provider state.
	// Its cost grows with the number of distinct keys, not of versions.
	SealedKeyIDs(ctx context.Context) ([]string, error)
	// GetProviderState returns a credential's sealed provider state, or
	// ErrNotFound when it has none.
	GetProviderState(ctx context.Context, credentialID string) (ProviderState, error)
	GetRun(ctx context.Context, id string) (Run, error)
	// ListRuns returns runs, newest first.
	ListRuns(ctx context.Context, f RunFilter) ([]Run, error)
	// ListSteps returns a run's steps in order.
	ListSteps(ctx context.Context, runID string) ([]Step, error)
	// ScanAuditEvents calls fn for each matching event, streaming (sealed
	// events in Seq order, unsealed in ID order). Returning an error from fn
	// stops the scan and returns that error. Events are read in pages, so
	// fn may use the same Store or Tx.
	ScanAuditEvents(ctx context.Context, f AuditFilter, fn func(AuditEvent) error) error
	// NotifyReader reads the notification outbox and deliveries.
	NotifyReader
	// GetAPIToken returns a token by id, revoked or not.
	GetAPIToken(ctx context.Context, id string) (APIToken, error)
	// GetAPITokenByHash returns the token whose hash is hash, revoked or
	// not (the caller checks expiry and revocation).
	GetAPITokenByHash(ctx context.Context, hash []byte) (APIToken, error)
	// ListAPITokens returns every token, revoked ones included, oldest
	// first.
	ListAPITokens(ctx context.Context) ([]APIToken, error)
}

// Tx is a transaction: every Reader method plus writes. After a write
// fails with ErrConflict or ErrNotFound, return an error from the InTx
// function: on Postgres the transaction can run nothing more.
type Tx interface {
	Reader
	// Raw returns the underlying pgx.Tx or *sql.Tx, for River's InsertTx.
	Raw() any
	// NotifyWriter writes the notification outbox and deliveries.
	NotifyWriter

	// UpsertProvider creates a provider or updates it, reviving it if it
	// was deleted.
	UpsertProvider(ctx context.Context, p Provider) error
	// DeleteProvider marks a provider deleted; ErrConflict while live
	// credentials use it.
	DeleteProvider(ctx context.Context, name string) error
	// UpsertTarget creates a target or updates it, reviving it if it was
	// deleted.
	UpsertTarget(ctx context.Context, t Target) error
	// DeleteTarget marks a target deleted; ErrConflict while live
	// credentials publish to it.
	DeleteTarget(ctx context.Context, name string) error

	// LockCredential returns a live credential and locks its row (SELECT ...
	// FOR UPDATE on Postgres; SQLite transactions are serial already).
	LockCredential(ctx context.Context, id string) (Credential, error)
	// UpsertCredentialSpec creates a credential or updates its spec fields,
	// reviving it if it was deleted. State is written only on create.
	UpsertCredentialSpec(ctx context.Context, c Credential) error
	// UpsertCredentialSpecs is UpsertCredentialSpec for many credentials
	// with distinct ids, written in a few statements (apply of a large
	// inventory).
	UpsertCredentialSpecs(ctx context.Context, cs []Credential) error
	// UpdateCredentialState writes the engine-maintained fields.
	UpdateCredentialState(ctx context.Context, id string, s CredentialState) error
	// SetCredentialStatus sets the status of several live credentials;
	// missing or deleted ids are skipped.
	SetCredentialStatus(ctx context.Context, ids []string, status Status) error
	// DeleteCredential marks a credential deleted; its history stays.
	DeleteCredential(ctx context.Context, id string) error

	InsertVersion(ctx context.Context, v Version) error
	// PutProviderState creates or replaces a credential's sealed provider
	// state. UpdatedAt defaults to now. An unknown credential is
	// ErrNotFound.
	PutProviderState(ctx context.Context, ps ProviderState) error
	// UpdateVersion writes stage, activated/expires/retired times, granted
	// scope, metadata, key id and the sealed value (cleared on
	// retire/discard). To swap the current version, demote the old one
	// first: the one-current index is checked per statement.
	UpdateVersion(ctx context.Context, v Version) error

	// InsertRun inserts a run; ErrActiveRun if the credential has one, in
	// which case the transaction stays usable.
	InsertRun(ctx context.Context, r Run) error
	// InsertRunsIfIdle inserts the runs whose credential has no active run
	// (the first of several for one credential wins) and returns those it
	// inserted, in input order. An existing run id is ErrConflict.
	InsertRunsIfIdle(ctx context.Context, runs []Run) ([]Run, error)
	// UpdateRun writes every field but ID, CredentialID and CreatedAt.
	UpdateRun(ctx context.Context, r Run) error
	// AdvanceRun writes a.Run like UpdateRun, and inserts a.Steps and
	// a.Events, provided the stored run is still in state a.FromState and
	// was last updated at a.FromUpdatedAt; otherwise it writes nothing and
	// returns ErrConflict (ErrNotFound if the run does not exist). The check
	// and the write of the run are one statement, so of two transactions
	// advancing one run from the same state only one succeeds (on Postgres
	// the second waits for the first and then finds the run moved). On
	// Postgres the whole transition is one statement (one round trip).
	AdvanceRun(ctx context.Context, a RunAdvance) error
	// InsertStep inserts steps (several in one statement). An existing
	// (run, seq) is ErrConflict; an unknown run is ErrNotFound.
	InsertStep(ctx context.Context, steps ...Step) error

	// InsertAPIToken stores a new token; ErrConflict if its id or hash
	// exists.
	InsertAPIToken(ctx context.Context, t APIToken) error
	// RevokeAPIToken sets a token's RevokedAt to at, unless it is revoked
	// already (then it changes nothing and returns nil); ErrNotFound if no
	// token has that id.
	RevokeAPIToken(ctx context.Context, id string, at time.Time) error
	// TouchAPIToken sets a token's LastUsedAt to at when that is later
	// than the stored one; a missing token is not an error.
	TouchAPIToken(ctx context.Context, id string, at time.Time) error

	// InsertAuditEvents appends unsealed events.
	InsertAuditEvents(ctx context.Context, evs ...AuditEvent) error
	// SealAuditEvents seals events previously returned unsealed with
	// their Seq, PrevHash, Hash and SealedAt: they move, as stored, from
	// the unsealed events to the sealed ones, which are never written
	// again. ErrConflict if one is already sealed or a Seq is taken
	// (another sealer won).
	SealAuditEvents(ctx context.Context, evs []AuditEvent) error
}

// ChangeMark tells, compared with an earlier one, whether a credential may
// have changed in between without reading any: two equal marks mean no
// transaction that could have changed one committed between the moments
// they were taken, as far as the store can see (ChangeTracker.ChangesExact).
type ChangeMark struct {
	// Local counts the transactions that committed through this Store
	// handle and may have changed a credential: every one but InAuditTx's.
	Local uint64
	// Others changes whenever another connection to the database commits
	// a transaction, where the database tells (SQLite's PRAGMA
	// data_version); it is always 0 on Postgres.
	Others int64
}

// AuditTx is what InAuditTx's function may do: read, and append audit
// events.
type AuditTx interface {
	Reader
	// InsertAuditEvents appends unsealed events (Tx.InsertAuditEvents).
	InsertAuditEvents(ctx context.Context, evs ...AuditEvent) error
	// ChangeMark returns the store's ChangeMark as this transaction sees
	// it.
	ChangeMark(ctx context.Context) (ChangeMark, error)
}

// ChangeTracker is implemented by stores that can tell cheaply whether a
// credential may have changed (internal/store/sqlstore's). The consume API
// uses it to serve a cached value without reading the credential again.
type ChangeTracker interface {
	// InAuditTx is InPipelinedTx for fn that only reads and appends audit
	// events: its commit changes no credential, so it does not count in
	// ChangeMark.Local.
	InAuditTx(ctx context.Context, fn func(tx AuditTx) error) error
	// ChangesExact reports whether ChangeMark sees every writer's commits:
	// true on SQLite (data_version covers the other connections and
	// processes); false on Postgres, where it sees only this handle's, and
	// another process's change shows only in the data.
	ChangesExact() bool
}
