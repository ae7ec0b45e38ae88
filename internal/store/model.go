package store

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/rotatorhq/rotator/internal/settings"
)

// Status is the rotation status of a credential.
type Status string

// Credential statuses (DESIGN.md §4).
const (
	StatusHealthy        Status = "healthy"
	StatusDue            Status = "due"
	StatusRotating       Status = "rotating"
	StatusOverdue        Status = "overdue"
	StatusExpired        Status = "expired"
	StatusFailing        Status = "failing"
	StatusNeedsAttention Status = "needs_attention"
	// StatusNew is a credential that has never been rotated by rotator and
	// has no current version yet.
	StatusNew Status = "new"
)

// Stage is the lifecycle stage of a version.
type Stage string

// Version stages: pending → current → previous → retired, or pending → discarded.
const (
	StagePending   Stage = "pending"
	StageCurrent   Stage = "current"
	StagePrevious  Stage = "previous"
	StageRetired   Stage = "retired"
	StageDiscarded Stage = "discarded"
)

// Provider is a configured provider instance.
type Provider struct {
	Name string
	Type string
	// Settings hold references, never values.
	Settings  settings.Map
	SpecHash  string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Target is a configured target instance: where current values are
// published for consumers (AWS Secrets Manager, a file, ...).
type Target struct {
	Name string
	Type string
	// Settings hold references, never values.
	Settings  settings.Map
	SpecHash  string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Window is a daily time window in which scheduled rotations may start.
type Window struct {
	Start    string `json:"start"`
	End      string `json:"end"`
	Timezone string `json:"timezone,omitempty"`
}

// Policy is a credential's rotation policy.
type Policy struct {
	MaxAge      time.Duration
	RenewBefore time.Duration
	// RenewAt is a fraction of MaxAge (0 < RenewAt < 1) after which the
	// credential is due; zero when RenewBefore is used.
	RenewAt  float64
	Schedule string
	Window   *Window
	Grace    time.Duration
}

// TargetBinding publishes a credential to a target under an optional key.
type TargetBinding struct {
	Target string `json:"target"`
	Key    string `json:"key,omitempty"`
}

// CredentialHead is what tells whether a stored credential's spec has
// changed, without its settings, labels and state: apply compares every
// stored credential with the file by it.
type CredentialHead struct {
	ID          string
	SpecHash    string
	RunbookFile string
	UpdatedAt   time.Time
}

// Credential is one credential of the inventory: its declared spec (from
// the config file) and its rotation state.
type Credential struct {
	// Spec, written by apply.
	ID       string
	Consumer string
	Provider string
	Scope    []string
	Owner    string
	Labels   map[string]string
	Settings settings.Map
	Policy   Policy
	Runbook  string
	// RunbookFile is the absolute path apply resolved Runbook to, so runs
	// started from any directory find and digest the same file.
	RunbookFile string
	Targets     []TargetBinding
	SpecHash    string

	// State, written by the engine.
	State CredentialState

	CreatedAt time.Time
	UpdatedAt time.Time

	// Current is the current version, filled by reads (nil if none).
	Current *Version

	// Stamp is the credential's stamp (Reader.CredentialStamps) when the
	// read asked for it (CredentialFilter.Stamps); 0 otherwise.
	Stamp uint64
}

// CredentialStamp is a credential's id and stamp: see
// Reader.CredentialStamps.
type CredentialStamp struct {
	ID    string
	Stamp uint64
}

// CredentialState is the part of a credential the engine maintains.
type CredentialState struct {
	Status           Status
	CurrentVersionID string
	PendingVersionID string
	NextRotationAt   time.Time // zero: not scheduled
	LastRotatedAt    time.Time // zero: never
	ExpiresAt        time.Time // zero: no known expiry
	// FailureCount counts consecutive failed runs.
	FailureCount int
}

// Version is one value of a credential.
type Version struct {
	ID           string
	CredentialID string
	Stage        Stage
	// Sealed is the AES-GCM ciphertext of the value; KeyID names the master
	// key that sealed it.
	Sealed       []byte
	KeyID        string
	Fingerprint  string
	CreatedAt    time.Time
	ActivatedAt  time.Time
	ExpiresAt    time.Time
	RetiredAt    time.Time
	GrantedScope []string
	Metadata     map[string]string
}

// ProviderState is the secret state a Stateful provider keeps for one
// credential from one mint to the next (a rotated refresh token), sealed
// under the master key KeyID with the credential id and ProviderStateAAD.
type ProviderState struct {
	CredentialID string
	KeyID        string
	Sealed       []byte
	UpdatedAt    time.Time
}

// ProviderStateAAD stands in for a version id when a provider state is
// sealed, so a sealed state cannot pass for a version's value.
const ProviderStateAAD = "provider-state"

// Version metadata keys the engine writes; every other key belongs to the
// provider that minted the version.
const (
	// MetaSHA256 holds "sha256:" and the hex SHA-256 of the value, so that a
	// value a server logged only as its SHA-256 (as servers commonly log
	// tokens) can be matched to its version.
	MetaSHA256 = "sha256"
	// MetaGrantedScope is ScopeNotReported when the resource did not say
	// which scope it granted (an OAuth token response without scope, and no
	// introspection that reported one); absent otherwise.
	MetaGrantedScope = "granted_scope"
	// ScopeNotReported is the value of MetaGrantedScope for a version whose
	// granted scope is unknown.
	ScopeNotReported = "not_reported"
)

// ScopeReported reports whether the resource said which scope it granted
// v. When it did not, GrantedScope is empty and means "unknown", not
// "nothing": no over-scope finding may be inferred from it.
func (v Version) ScopeReported() bool { return v.Metadata[MetaGrantedScope] != ScopeNotReported }

// ExtraScope is the scope granted that declared does not include, each
// once, in granted's order (nil when the grant is within the declaration).
func ExtraScope(granted, declared []string) []string {
	var extra []string
	for _, s := range granted {
		if !slices.Contains(declared, s) && !slices.Contains(extra, s) {
			extra = append(extra, s)
		}
	}
	return extra
}

// Trigger says why a run started.
type Trigger string

// Run triggers.
const (
	TriggerSchedule  Trigger = "schedule"
	TriggerExpiry    Trigger = "expiry"
	TriggerManual    Trigger = "manual"
	TriggerEmergency Trigger = "emergency"
	TriggerAPI       Trigger = "api"
)

// RunbookRef is the runbook a run followed.
type RunbookRef struct {
	Path   string `json:"path"`
	Anchor string `json:"anchor"`
	Digest string `json:"digest"`
}

// Run is one rotation of one credential. Its State is a rotation.State
// value; the store treats it as an opaque string except for Active.
type Run struct {
	ID           string
	CredentialID string
	Trigger      Trigger
	Actor        string
	Reason       string
	State        string
	// Active is true until the run reaches a terminal state; the database
	// allows one active run per credential.
	Active       bool
	Attempt      int
	Priority     int
	Options      json.RawMessage
	OldVersionID string
	NewVersionID string
	Runbook      RunbookRef
	Error        string
	CreatedAt    time.Time
	StartedAt    time.Time
	FinishedAt   time.Time
	UpdatedAt    time.Time
	// Executor and LeaseUntil are the process that claimed the run with
	// Store.ClaimRuns and until when; empty when nobody holds a lease. Only
	// ClaimRuns and ReleaseRuns write them.
	Executor   string
	LeaseUntil time.Time
}

// Step is one state transition of a run.
type Step struct {
	RunID      string
	Seq        int
	Name       string
	State      string // "ok" or "failed"
	Attempt    int
	StartedAt  time.Time
	FinishedAt time.Time
	Error      string
	Evidence   map[string]string
}

// AuditEvent is one entry of the append-only audit log. Events are inserted
// without Seq and Hash; the sealer assigns both after commit.
type AuditEvent struct {
	// ID is the insertion id (assigned by the database).
	ID           int64
	OccurredAt   time.Time
	Actor        string
	Action       string
	CredentialID string
	RunID        string
	// Data is a JSON object of secret-free details (fingerprints, diffs).
	Data json.RawMessage
	// Seq is the position in the hash chain; 0 while unsealed.
	Seq      int64
	PrevHash string
	Hash     string
	SealedAt time.Time
}

// APIToken is an API token of the service (DESIGN.md §11), as stored: never
// the token itself, only its hash.
type APIToken struct {
	// ID is the token's public id (named in audit events and by 'rotator
	// tokens revoke').
	ID   string
	Name string
	// Hash is the SHA-256 of the token; unique.
	Hash []byte
	// Scopes are what the token allows, e.g. "consume:github-mcp".
	Scopes    []string
	CreatedBy string
	CreatedAt time.Time
	// ExpiresAt is zero for a token that does not expire.
	ExpiresAt  time.Time
	RevokedAt  time.Time
	LastUsedAt time.Time
}

// CredentialGauge is what the metrics of one live credential are computed
// from (Reader.MetricsSnapshot).
type CredentialGauge struct {
	ID, Consumer, Provider string
	// Status is the stored status (rotation.EffectiveStatus derives the
	// one to show).
	Status Status
	// HasCurrent is true when the credential has a current version, issued
	// (activated, else created) at Issued.
	HasCurrent bool
	Issued     time.Time
	MaxAge     time.Duration
	// NextRotationAt and ExpiresAt are zero when unknown.
	NextRotationAt, ExpiresAt time.Time
}

// MetricsSnapshot is the state the service's gauges show, read at scrape
// time.
type MetricsSnapshot struct {
	Credentials []CredentialGauge
	// ActiveRuns counts runs not yet finished (queued or executing).
	ActiveRuns int64
	// UnsealedEvents counts audit events the sealer has not chained yet.
	UnsealedEvents int64
}
