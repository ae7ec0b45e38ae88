// Package view renders store objects into the stable output contract of
// DESIGN.md §12: the field names of every `-o json` output and API response.
// Scripts depend on these names; change them only on purpose and record it
// in CHANGELOG.md. No view ever carries a secret value: versions appear by
// id and fingerprint only.
package view

import (
	"context"
	"fmt"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/providers"
	"github.com/rotatorhq/rotator/providers/registry"
	"github.com/rotatorhq/rotator/rotation"
)

// Version is a version as shown to users.
type Version struct {
	ID          string     `json:"id"`
	Stage       string     `json:"stage,omitempty"`
	Fingerprint string     `json:"fingerprint"`
	CreatedAt   time.Time  `json:"created_at"`
	ExpiresAt   *time.Time `json:"expires_at"`
	// SHA256 is "sha256:" and the hex SHA-256 of the value, to match a
	// value a server logged hashed; shown by `credentials show`, empty for
	// versions minted before it was recorded.
	SHA256 string `json:"sha256,omitempty"`
}

// Credential is a credential as shown by `credentials list|show -o json`.
type Credential struct {
	ID           string   `json:"id"`
	Consumer     string   `json:"consumer"`
	Provider     string   `json:"provider"`
	Scope        []string `json:"scope"`
	GrantedScope []string `json:"granted_scope"`
	// GrantedScopeReported is false when the resource did not report the
	// current value's granted scope: GrantedScope is then empty because it
	// is unknown, not because nothing was granted.
	GrantedScopeReported bool              `json:"granted_scope_reported"`
	Owner                string            `json:"owner"`
	Labels               map[string]string `json:"labels"`
	Status               string            `json:"status"`
	AgeSeconds           *int64            `json:"age_seconds"`
	MaxAgeSeconds        int64             `json:"max_age_seconds"`
	LastRotatedAt        *time.Time        `json:"last_rotated_at"`
	NextRotationAt       *time.Time        `json:"next_rotation_at"`
	ExpiresAt            *time.Time        `json:"expires_at"`
	CurrentVersion       *Version          `json:"current_version"`
	Runbook              string            `json:"runbook"`

	// Shown by `credentials show` only.
	Schedule     string                `json:"schedule,omitempty"`
	RenewBefore  int64                 `json:"renew_before_seconds,omitempty"`
	GraceSeconds int64                 `json:"grace_seconds,omitempty"`
	Targets      []store.TargetBinding `json:"targets,omitempty"`
	Capabilities *Capabilities         `json:"capabilities,omitempty"`
	Versions     []Version             `json:"versions,omitempty"`
}

// NewCredential renders c as seen at now.
func NewCredential(c store.Credential, now time.Time) Credential {
	v := Credential{
		ID:                   c.ID,
		Consumer:             c.Consumer,
		Provider:             c.Provider,
		Scope:                nonNil(c.Scope),
		GrantedScope:         []string{},
		GrantedScopeReported: true,
		Owner:                c.Owner,
		Labels:               c.Labels,
		Status:               string(rotation.EffectiveStatus(c, now)),
		MaxAgeSeconds:        int64(c.Policy.MaxAge / time.Second),
		LastRotatedAt:        ptr(c.State.LastRotatedAt),
		NextRotationAt:       ptr(c.State.NextRotationAt),
		ExpiresAt:            ptr(c.State.ExpiresAt),
		Runbook:              c.Runbook,
	}
	if v.Labels == nil {
		v.Labels = map[string]string{}
	}
	if cur := c.Current; cur != nil {
		cv := NewVersion(*cur)
		cv.Stage, cv.SHA256 = "", "" // the contract of current_version (DESIGN.md §12); show lists versions with it
		v.CurrentVersion = &cv
		v.GrantedScope = nonNil(cur.GrantedScope)
		v.GrantedScopeReported = cur.ScopeReported()
		age := int64(now.Sub(issued(*cur)) / time.Second)
		v.AgeSeconds = &age
	}
	return v
}

// NewCredentialDetail renders c as `credentials show` and GET
// /v1/credentials/{id} show it: NewCredential plus its policy, targets,
// provider capabilities and versions (by id and fingerprint).
func NewCredentialDetail(ctx context.Context, st store.Reader, c store.Credential, now time.Time) (Credential, error) {
	v := NewCredential(c, now)
	v.Schedule = c.Policy.Schedule
	v.RenewBefore = int64(c.Policy.RenewBefore / time.Second)
	v.GraceSeconds = int64(c.Policy.Grace / time.Second)
	v.Targets = c.Targets
	if p, err := st.GetProvider(ctx, c.Provider); err == nil {
		if f, ok := registry.Lookup(p.Type); ok {
			v.Capabilities = NewCapabilities(f.CapabilitiesFor(p.Settings))
		}
	}
	versions, err := st.ListVersions(ctx, c.ID)
	if err != nil {
		return Credential{}, fmt.Errorf("reading versions of %s: %w", c.ID, err)
	}
	for _, ver := range versions {
		v.Versions = append(v.Versions, NewVersion(ver))
	}
	return v, nil
}

// NewVersion renders a version.
func NewVersion(ver store.Version) Version {
	return Version{ID: ver.ID, Stage: string(ver.Stage), Fingerprint: ver.Fingerprint, CreatedAt: ver.CreatedAt.UTC(), ExpiresAt: ptr(ver.ExpiresAt),
		SHA256: ver.Metadata[store.MetaSHA256]}
}

func issued(v store.Version) time.Time {
	if !v.ActivatedAt.IsZero() {
		return v.ActivatedAt
	}
	return v.CreatedAt
}

func ptr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Run is a run as shown by `runs list|show -o json`.
type Run struct {
	ID          string           `json:"id"`
	Credential  string           `json:"credential"`
	Trigger     string           `json:"trigger"`
	Actor       string           `json:"actor"`
	Reason      string           `json:"reason"`
	State       string           `json:"state"`
	Attempt     int              `json:"attempt"`
	CreatedAt   time.Time        `json:"created_at"`
	StartedAt   *time.Time       `json:"started_at"`
	FinishedAt  *time.Time       `json:"finished_at"`
	OldVersion  *string          `json:"old_version"`
	NewVersion  *string          `json:"new_version"`
	Runbook     store.RunbookRef `json:"runbook"`
	Error       *string          `json:"error"`
	Steps       []Step           `json:"steps,omitempty"`
	DurationSec *float64         `json:"duration_seconds"`
}

// Step is a step of a run.
type Step struct {
	Name       string            `json:"name"`
	State      string            `json:"state"`
	StartedAt  time.Time         `json:"started_at"`
	FinishedAt time.Time         `json:"finished_at"`
	Error      *string           `json:"error"`
	Evidence   map[string]string `json:"evidence,omitempty"`
}

// NewRun renders a run (steps may be nil).
func NewRun(r store.Run, steps []store.Step) Run {
	v := Run{
		ID: r.ID, Credential: r.CredentialID, Trigger: string(r.Trigger), Actor: r.Actor, Reason: r.Reason,
		State: r.State, Attempt: r.Attempt, CreatedAt: r.CreatedAt.UTC(), StartedAt: ptr(r.StartedAt), FinishedAt: ptr(r.FinishedAt),
		OldVersion: strPtr(r.OldVersionID), NewVersion: strPtr(r.NewVersionID), Runbook: r.Runbook, Error: strPtr(r.Error),
	}
	if !r.StartedAt.IsZero() && !r.FinishedAt.IsZero() {
		d := r.FinishedAt.Sub(r.StartedAt).Seconds()
		v.DurationSec = &d
	}
	for _, s := range steps {
		v.Steps = append(v.Steps, Step{Name: s.Name, State: s.State, StartedAt: s.StartedAt.UTC(), FinishedAt: s.FinishedAt.UTC(), Error: strPtr(s.Error), Evidence: s.Evidence})
	}
	return v
}

func strPtr(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// Capabilities are a provider type's capabilities as shown to users.
type Capabilities struct {
	Overlap       bool  `json:"overlap"`
	Revocable     bool  `json:"revocable"`
	ScopeAware    bool  `json:"scope_aware"`
	MaxTTLSeconds int64 `json:"max_ttl_seconds"`
}

// NewCapabilities renders a provider type's capabilities.
func NewCapabilities(c providers.Capabilities) *Capabilities {
	return &Capabilities{Overlap: c.Overlap, Revocable: c.Revocable, ScopeAware: c.ScopeAware, MaxTTLSeconds: int64(c.MaxTTL / time.Second)}
}
