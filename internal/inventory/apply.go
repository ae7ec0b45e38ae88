// Package inventory applies a configuration file to the store: it computes
// the difference between the declared inventory and the stored one, writes
// it in one transaction (so a failed apply changes nothing), and records
// what changed in the audit log.
package inventory

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"time"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
	"github.com/rotatorhq/rotator/targets"
)

// Actions of a change.
const (
	Created   = "created"
	Updated   = "updated"
	Unchanged = "unchanged"
	Removed   = "removed"
	// Orphaned is a stored object that the file no longer declares, kept
	// because --prune was not given.
	Orphaned = "not_in_config"
)

// Change is what apply did (or would do) to one provider or credential.
type Change struct {
	Kind   string   `json:"kind"` // "provider" or "credential"
	Name   string   `json:"name"`
	Action string   `json:"action"`
	Fields []string `json:"fields,omitempty"` // changed fields of an update
	Note   string   `json:"note,omitempty"`
}

// Diff is the result of an apply.
type Diff struct {
	Changes  []Change `json:"changes"`
	Warnings []string `json:"warnings"`
	DryRun   bool     `json:"dry_run"`
	// Removals are the credentials removed (with Prune), as they were: what
	// rotation.Engine.Withdraw needs to withdraw their values from their
	// targets and revoke them, after the apply committed.
	Removals []rotation.Removal `json:"-"`
}

// Count returns how many changes have the given action.
func (d Diff) Count(action string) int {
	n := 0
	for _, c := range d.Changes {
		if c.Action == action {
			n++
		}
	}
	return n
}

// Changed reports whether the apply changed (or would change) anything.
func (d Diff) Changed() bool {
	return d.Count(Created)+d.Count(Updated)+d.Count(Removed) > 0
}

// Options control an apply.
type Options struct {
	// DryRun computes the diff and rolls back.
	DryRun bool
	// Prune removes stored providers and credentials the file does not declare.
	Prune bool
	// Actor is recorded in the audit log.
	Actor string
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

var errDryRun = errors.New("dry run")

// auditBatch is how many audit events apply holds before writing them;
// writeBatch how many new credentials.
const (
	auditBatch = 1000
	writeBatch = 500
)

// Apply writes cfg into st in one transaction and returns what changed.
func Apply(ctx context.Context, st store.Store, cfg *config.Config, opts Options) (Diff, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	var diff Diff
	err := st.InTx(ctx, func(tx store.Tx) (err error) {
		diff = Diff{DryRun: opts.DryRun, Changes: []Change{}, Warnings: []string{}}
		for _, w := range cfg.Warnings {
			diff.Warnings = append(diff.Warnings, w.Error())
		}
		t := now().UTC()
		// Audit events are written as they accumulate, in the
		// transaction, not all at the end: 100,000 of them would be held.
		var events []store.AuditEvent
		recorded := 0
		var eventsErr error
		defer func() {
			if eventsErr != nil { // the first failure, not what followed in the aborted transaction
				err = eventsErr
			}
		}()
		writeEvents := func() error {
			if len(events) > 0 && eventsErr == nil {
				if err := tx.InsertAuditEvents(ctx, events...); err != nil {
					eventsErr = fmt.Errorf("recording audit events: %w", err)
				}
				events = events[:0]
			}
			return eventsErr
		}
		record := func(c Change, credentialID string) {
			diff.Changes = append(diff.Changes, c)
			if c.Action == Unchanged || c.Action == Orphaned {
				return
			}
			data, _ := json.Marshal(map[string]any{"name": c.Name, "fields": c.Fields})
			events = append(events, store.AuditEvent{
				OccurredAt: t, Actor: opts.Actor, Action: c.Kind + "." + c.Action,
				CredentialID: credentialID, Data: data,
			})
			recorded++
			if len(events) >= auditBatch {
				_ = writeEvents() // an error is returned by the next writeEvents
			}
		}

		if err := applyProviders(ctx, tx, cfg, t, record); err != nil {
			return err
		}
		if err := applyTargets(ctx, tx, cfg, t, record); err != nil {
			return err
		}
		var pubs map[string][]targets.Binding
		plan := func(c store.Credential) error {
			if pubs == nil {
				pubs = publishers(cfg)
			}
			r, err := rotation.PlanRemoval(ctx, tx, c, pubs)
			diff.Removals = append(diff.Removals, r)
			return err
		}
		if err := applyCredentials(ctx, tx, cfg, t, opts.Prune, record, plan); err != nil {
			return err
		}
		if opts.Prune {
			if err := pruneProviders(ctx, tx, cfg, record); err != nil {
				return err
			}
			if err := pruneTargets(ctx, tx, cfg, record); err != nil {
				return err
			}
		}
		if recorded > 0 {
			summary, _ := json.Marshal(map[string]any{
				"file": cfg.File, "created": diff.Count(Created), "updated": diff.Count(Updated), "removed": diff.Count(Removed),
			})
			events = append(events, store.AuditEvent{OccurredAt: t, Actor: opts.Actor, Action: "config.applied", Data: summary})
		}
		if err := writeEvents(); err != nil {
			return err
		}
		if opts.DryRun {
			return errDryRun
		}
		return nil
	})
	if errors.Is(err, errDryRun) {
		err = nil
	}
	if err != nil {
		return Diff{}, err
	}
	return diff, nil
}

func applyProviders(ctx context.Context, tx store.Tx, cfg *config.Config, t time.Time, record func(Change, string)) error {
	stored, err := tx.ListProviders(ctx)
	if err != nil {
		return fmt.Errorf("listing providers: %w", err)
	}
	byName := map[string]store.Provider{}
	for _, p := range stored {
		byName[p.Name] = p
	}
	for _, name := range sortedKeys(cfg.Providers) {
		p := cfg.Providers[name].ToStore()
		old, exists := byName[name]
		switch {
		case !exists:
			p.CreatedAt, p.UpdatedAt = t, t
			record(Change{Kind: "provider", Name: name, Action: Created}, "")
		case old.SpecHash == p.SpecHash:
			record(Change{Kind: "provider", Name: name, Action: Unchanged}, "")
			continue
		default:
			p.CreatedAt, p.UpdatedAt = old.CreatedAt, t
			record(Change{Kind: "provider", Name: name, Action: Updated, Fields: providerFields(old, p)}, "")
		}
		if err := tx.UpsertProvider(ctx, p); err != nil {
			return fmt.Errorf("writing provider %s: %w", name, err)
		}
	}
	return nil
}

func pruneProviders(ctx context.Context, tx store.Tx, cfg *config.Config, record func(Change, string)) error {
	stored, err := tx.ListProviders(ctx)
	if err != nil {
		return fmt.Errorf("listing providers: %w", err)
	}
	for _, p := range stored {
		if _, ok := cfg.Providers[p.Name]; ok {
			continue
		}
		err := tx.DeleteProvider(ctx, p.Name)
		switch {
		case errors.Is(err, store.ErrConflict):
			// Removed credentials keep their history, which names the provider.
			record(Change{Kind: "provider", Name: p.Name, Action: Orphaned, Note: "kept: the history of removed credentials refers to it"}, "")
		case err != nil:
			return fmt.Errorf("removing provider %s: %w", p.Name, err)
		default:
			record(Change{Kind: "provider", Name: p.Name, Action: Removed}, "")
		}
	}
	return nil
}

func applyCredentials(ctx context.Context, tx store.Tx, cfg *config.Config, t time.Time, prune bool, record func(Change, string), plan func(store.Credential) error) error {
	stored, byID, err := storedCredentials(ctx, tx)
	if err != nil {
		return err
	}
	// New credentials (and moved runbooks) are written in batches: one
	// statement per writeBatch credentials, not one each.
	var batch []store.Credential
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := tx.UpsertCredentialSpecs(ctx, batch)
		batch = batch[:0]
		if err != nil {
			return fmt.Errorf("writing credentials: %w", err)
		}
		return nil
	}
	write := func(c store.Credential) error {
		if batch = append(batch, c); len(batch) < writeBatch {
			return nil
		}
		return flush()
	}
	for _, cc := range cfg.Credentials {
		c := cc.ToStore()
		c.RunbookFile = cc.RunbookRef.File
		ref, exists := byID[c.ID]
		if exists {
			ref.declared = true
		}
		change := Change{Kind: "credential", Name: c.ID}
		switch {
		case !exists:
			change.Action = Created
			c.CreatedAt, c.UpdatedAt = t, t
			c.State = store.CredentialState{Status: store.StatusNew}
		case ref.SpecHash == c.SpecHash:
			record(Change{Kind: "credential", Name: c.ID, Action: Unchanged}, c.ID)
			if c.RunbookFile != "" && c.RunbookFile != ref.RunbookFile {
				// Same spec, applied from elsewhere: remember where its
				// runbook is now, without reporting a change. (The state
				// and creation time of a stored credential are not written.)
				c.UpdatedAt = ref.UpdatedAt
				if err := write(c); err != nil {
					return err
				}
			}
			continue
		default:
			old, err := tx.GetCredential(ctx, c.ID)
			if err != nil {
				return fmt.Errorf("reading credential %s: %w", c.ID, err)
			}
			change.Action = Updated
			change.Fields = credentialFields(old, c)
			c.CreatedAt, c.UpdatedAt = old.CreatedAt, t
			c.State, c.Current = old.State, old.Current
		}
		plan, err := rotation.Schedule(c, t)
		if err != nil {
			return fmt.Errorf("scheduling credential %s: %w", c.ID, err)
		}
		c.State.NextRotationAt = plan.Due
		if !exists {
			if err := write(c); err != nil {
				return err
			}
		} else {
			if err := tx.UpsertCredentialSpec(ctx, c); err != nil {
				return fmt.Errorf("writing credential %s: %w", c.ID, err)
			}
			if err := tx.UpdateCredentialState(ctx, c.ID, c.State); err != nil {
				return fmt.Errorf("rescheduling credential %s: %w", c.ID, err)
			}
		}
		record(change, c.ID)
	}
	if err := flush(); err != nil {
		return err
	}
	for _, id := range stored {
		if byID[id].declared {
			continue
		}
		if !prune {
			record(Change{Kind: "credential", Name: id, Action: Orphaned, Note: "kept; apply with --prune to remove"}, id)
			continue
		}
		c, err := tx.GetCredential(ctx, id)
		if err != nil {
			return fmt.Errorf("reading credential %s: %w", id, err)
		}
		if err := plan(c); err != nil {
			return fmt.Errorf("reading what removing credential %s leaves behind: %w", id, err)
		}
		if err := tx.DeleteCredential(ctx, id); err != nil {
			return fmt.Errorf("removing credential %s: %w", id, err)
		}
		record(Change{Kind: "credential", Name: id, Action: Removed}, id)
	}
	return nil
}

func providerFields(a, b store.Provider) []string {
	var f []string
	if a.Type != b.Type {
		f = append(f, "type")
	}
	for _, k := range unionKeys(a.Settings, b.Settings) {
		if !reflect.DeepEqual(normalize(a.Settings[k]), normalize(b.Settings[k])) {
			f = append(f, k)
		}
	}
	return f
}

func credentialFields(a, b store.Credential) []string {
	pairs := []struct {
		name string
		x, y any
	}{
		{"consumer", a.Consumer, b.Consumer}, {"provider", a.Provider, b.Provider},
		{"scope", a.Scope, b.Scope}, {"owner", a.Owner, b.Owner}, {"labels", a.Labels, b.Labels},
		{"settings", a.Settings, b.Settings}, {"max_age", a.Policy.MaxAge, b.Policy.MaxAge},
		{"renew_before", a.Policy.RenewBefore, b.Policy.RenewBefore}, {"renew_at", a.Policy.RenewAt, b.Policy.RenewAt},
		{"schedule", a.Policy.Schedule, b.Policy.Schedule}, {"window", a.Policy.Window, b.Policy.Window},
		{"grace", a.Policy.Grace, b.Policy.Grace}, {"runbook", a.Runbook, b.Runbook}, {"targets", a.Targets, b.Targets},
	}
	var f []string
	for _, p := range pairs {
		if !reflect.DeepEqual(normalize(p.x), normalize(p.y)) {
			f = append(f, p.name)
		}
	}
	return f
}

// normalize makes values read back from the store comparable with values
// from the file (nil vs empty, int vs float64 after a JSON round trip).
func normalize(v any) any {
	b, err := json.Marshal(v)
	if err != nil {
		return v
	}
	var out any
	_ = json.Unmarshal(b, &out)
	switch x := out.(type) {
	case []any:
		if len(x) == 0 {
			return nil
		}
	case map[string]any:
		if len(x) == 0 {
			return nil
		}
	}
	return out
}

func unionKeys[V any](a, b map[string]V) []string {
	var keys []string
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func targetToStore(t config.Target) store.Target {
	spec, _ := json.Marshal(map[string]any{"type": t.Type, "settings": t.Settings})
	sum := sha256.Sum256(spec)
	return store.Target{Name: t.Name, Type: t.Type, Settings: t.Settings, SpecHash: hex.EncodeToString(sum[:])}
}

func applyTargets(ctx context.Context, tx store.Tx, cfg *config.Config, t time.Time, record func(Change, string)) error {
	stored, err := tx.ListTargets(ctx)
	if err != nil {
		return fmt.Errorf("listing targets: %w", err)
	}
	byName := map[string]store.Target{}
	for _, x := range stored {
		byName[x.Name] = x
	}
	for _, name := range sortedKeys(cfg.Targets) {
		tg := targetToStore(cfg.Targets[name])
		old, exists := byName[name]
		switch {
		case !exists:
			tg.CreatedAt, tg.UpdatedAt = t, t
			record(Change{Kind: "target", Name: name, Action: Created}, "")
		case old.SpecHash == tg.SpecHash:
			record(Change{Kind: "target", Name: name, Action: Unchanged}, "")
			continue
		default:
			tg.CreatedAt, tg.UpdatedAt = old.CreatedAt, t
			fields := providerFields(store.Provider{Type: old.Type, Settings: old.Settings}, store.Provider{Type: tg.Type, Settings: tg.Settings})
			record(Change{Kind: "target", Name: name, Action: Updated, Fields: fields}, "")
		}
		if err := tx.UpsertTarget(ctx, tg); err != nil {
			return fmt.Errorf("writing target %s: %w", name, err)
		}
	}
	return nil
}

func pruneTargets(ctx context.Context, tx store.Tx, cfg *config.Config, record func(Change, string)) error {
	stored, err := tx.ListTargets(ctx)
	if err != nil {
		return fmt.Errorf("listing targets: %w", err)
	}
	for _, x := range stored {
		if _, ok := cfg.Targets[x.Name]; ok {
			continue
		}
		err := tx.DeleteTarget(ctx, x.Name)
		switch {
		case errors.Is(err, store.ErrConflict):
			record(Change{Kind: "target", Name: x.Name, Action: Orphaned, Note: "kept: a credential still publishes to it"}, "")
		case err != nil:
			return fmt.Errorf("removing target %s: %w", x.Name, err)
		default:
			record(Change{Kind: "target", Name: x.Name, Action: Removed}, "")
		}
	}
	return nil
}

// publishers returns, by target, the credentials the file publishes there.
func publishers(cfg *config.Config) map[string][]targets.Binding {
	out := map[string][]targets.Binding{}
	for _, c := range cfg.Credentials {
		for _, b := range c.Targets {
			out[b.Target] = append(out[b.Target], targets.Binding{CredentialID: c.ID, Key: b.Key})
		}
	}
	return out
}
