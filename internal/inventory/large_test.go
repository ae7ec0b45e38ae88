package inventory_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/inventory"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/testconfig"
)

// TestApplyMany applies an inventory larger than a page of stored
// credentials and a batch of audit events: creates, no-ops, a move of the
// file (runbooks found elsewhere, nothing reported), updates, orphans.
func TestApplyMany(t *testing.T) {
	t.Parallel()
	const n = 2500
	dir := t.TempDir()
	path, err := testconfig.WriteFiles(dir, "big.yaml", n)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	moved, err := testconfig.WriteFiles(t.TempDir(), "big.yaml", n)
	if err != nil {
		t.Fatal(err)
	}
	cfgMoved, err := config.Load(moved)
	if err != nil {
		t.Fatal(err)
	}
	objects := n + 5 + 2*testconfig.Targets // credentials, providers, targets
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	later := now.Add(time.Hour)
	forEachStore(t, func(t *testing.T, st store.Store) {
		ctx := t.Context()
		first, err := inventory.Apply(ctx, st, cfg, inventory.Options{Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		if first.Count(inventory.Created) != objects {
			t.Fatalf("first apply created %d, want %d", first.Count(inventory.Created), objects)
		}
		again, err := inventory.Apply(ctx, st, cfgMoved, inventory.Options{Now: func() time.Time { return later }})
		if err != nil {
			t.Fatal(err)
		}
		// The targets' paths are in the directory; the credentials are the same.
		for _, ch := range again.Changes {
			if want := map[string]string{"credential": inventory.Unchanged, "provider": inventory.Unchanged, "target": inventory.Updated}[ch.Kind]; ch.Action != want {
				t.Fatalf("apply of the moved file: %s %s %s, want %s", ch.Kind, ch.Name, ch.Action, want)
			}
		}
		c, err := st.GetCredential(ctx, "notes-api-key-2499")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(c.RunbookFile, filepath.Dir(moved)) || !c.UpdatedAt.Equal(now) {
			t.Errorf("after the move: runbook file %s, updated %s; want under %s, updated %s", c.RunbookFile, c.UpdatedAt, filepath.Dir(moved), now)
		}

		// Change the owner of every fifth credential and drop the last 100.
		changed := *cfg
		changed.Credentials = nil
		for i, cr := range cfg.Credentials[:n-100] {
			if i%5 == 0 {
				cr.Owner = "new-owner"
			}
			changed.Credentials = append(changed.Credentials, cr)
		}
		third, err := inventory.Apply(ctx, st, &changed, inventory.Options{Now: func() time.Time { return later }})
		if err != nil {
			t.Fatal(err)
		}
		u := 0
		for _, ch := range third.Changes {
			if ch.Kind == "credential" && ch.Action == inventory.Updated {
				u++
				if len(ch.Fields) != 1 || ch.Fields[0] != "owner" {
					t.Fatalf("update of %s: fields %v, want [owner]", ch.Name, ch.Fields)
				}
			}
		}
		if o := third.Count(inventory.Orphaned); u != (n-100)/5 || o != 100 {
			t.Fatalf("third apply: %d credentials updated, %d not in config; want %d and 100", u, o, (n-100)/5)
		}
		c, err = st.GetCredential(ctx, "github-mcp-token-0")
		if err != nil {
			t.Fatal(err)
		}
		if c.Owner != "new-owner" || !c.CreatedAt.Equal(now) || !c.UpdatedAt.After(now) {
			t.Errorf("updated credential: owner %s, created %s, updated %s", c.Owner, c.CreatedAt, c.UpdatedAt)
		}

		counts := map[string]int{}
		err = st.ScanAuditEvents(ctx, store.AuditFilter{}, func(e store.AuditEvent) error {
			counts[e.Action]++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if counts["credential.created"] != n || counts["credential.updated"] != (n-100)/5 || counts["config.applied"] != 3 {
			t.Errorf("audit events: %v", counts)
		}
	})
}
