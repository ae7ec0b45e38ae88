// Package storetest is the conformance suite of store.Store: every
// implementation runs Exercise, so Postgres and SQLite behave alike.
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/store"
)

// Exercise runs the conformance suite. newStore returns an open store on an
// empty database (not migrated) and closes it at t.Cleanup; every subtest
// calls it once and the subtests run in parallel.
func Exercise(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Helper()
	setup := func(t *testing.T) (store.Store, context.Context) {
		t.Helper()
		t.Parallel()
		s := newStore(t)
		ctx := t.Context()
		if err := s.Migrate(ctx); err != nil {
			t.Fatalf("migrate: %v", err)
		}
		return s, ctx
	}
	for name, test := range map[string]func(t *testing.T, s store.Store, ctx context.Context){
		"MigrateIdempotent":          testMigrateIdempotent,
		"Handles":                    testHandles,
		"Providers":                  testProviders,
		"ProviderDeleteInUse":        testProviderDeleteInUse,
		"CredentialUpsert":           testCredentialUpsert,
		"CredentialUpsertMany":       testCredentialUpsertMany,
		"CredentialHeads":            testCredentialHeads,
		"CredentialNotFound":         testCredentialNotFound,
		"CredentialUnknownProvider":  testCredentialUnknownProvider,
		"CredentialState":            testCredentialState,
		"CredentialDeleteRevive":     testCredentialDeleteRevive,
		"ListCredentialsFilters":     testListCredentialsFilters,
		"ListCredentialsPaging":      testListCredentialsPaging,
		"CredentialStamps":           testCredentialStamps,
		"LockCredential":             testLockCredential,
		"Versions":                   testVersions,
		"VersionOneCurrent":          testVersionOneCurrent,
		"VersionErrors":              testVersionErrors,
		"CurrentVersionFilled":       testCurrentVersionFilled,
		"Runs":                       testRuns,
		"RunOneActive":               testRunOneActive,
		"RunOneActiveConcurrent":     testRunOneActiveConcurrent,
		"ListRunsFilters":            testListRunsFilters,
		"Steps":                      testSteps,
		"AuditSealing":               testAuditSealing,
		"AuditFilters":               testAuditFilters,
		"AuditPaging":                testAuditPaging,
		"AuditSealConflicts":         testAuditSealConflicts,
		"InTxRollback":               testInTxRollback,
		"InTxPanic":                  testInTxPanic,
		"TimesRoundTrip":             testTimesRoundTrip,
		"JSONRoundTrip":              testJSONRoundTrip,
		"SettingsNestedRoundTrip":    testSettingsNestedRoundTrip,
		"AuditDataRoundTrip":         testAuditDataRoundTrip,
		"ReadsOutsideTxSeeCommitted": testReadsSeeCommitted,
		"Targets":                    testTargets,
		"SetCredentialStatus":        testSetCredentialStatus,
		"ListCredentialsByDue":       testListCredentialsByDue,
		"CredentialsRanked":          testCredentialsRanked,
		"Counts":                     testCounts,
		"Backlog":                    testBacklog,
		"InsertRunsIfIdle":           testInsertRunsIfIdle,
		"InsertRunsIfIdleConcurrent": testInsertRunsIfIdleConcurrent,
		"ListRunsByIDs":              testListRunsByIDs,
		"AdvanceRun":                 testAdvanceRun,
		"AdvanceRunConcurrent":       testAdvanceRunConcurrent,
		"StepsMultiRow":              testStepsMultiRow,
		"PipelinedTx":                testPipelinedTx,
		"NotifyOutbox":               testNotifyOutbox,
		"NotifyOutboxRows":           testNotifyOutboxRows,
		"PipelinedTxConcurrent":      testPipelinedTxConcurrent,
		"GetRunWork":                 testGetRunWork,
		"SealedKeyIDs":               testSealedKeyIDs,
		"ProviderState":              testProviderState,
		"ListCredentialsDeleted":     testListCredentialsIncludeDeleted,
		"APITokens":                  testAPITokens,
		"ChangeMark":                 testChangeMark,
	} {
		t.Run(name, func(t *testing.T) {
			s, ctx := setup(t)
			test(t, s, ctx)
		})
	}
}

// t0 is a time with microseconds, as the store keeps them.
var t0 = time.Date(2026, 1, 2, 3, 4, 5, 678901000, time.UTC)

func tx(t *testing.T, s store.Store, fn func(tx store.Tx) error) {
	t.Helper()
	if err := s.InTx(t.Context(), fn); err != nil {
		t.Fatalf("transaction: %v", err)
	}
}

func equal(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, got, want)
	}
}

func isErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: got error %v, want %v", what, err, want)
	}
}

func noErr(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func provider(name string) store.Provider {
	return store.Provider{
		Name:      name,
		Type:      "generated",
		Settings:  settings.Map{"length": 40, "prefix": "rtr_"},
		SpecHash:  "ph-" + name,
		CreatedAt: t0,
		UpdatedAt: t0,
	}
}

func credential(id string, mod ...func(*store.Credential)) store.Credential {
	c := store.Credential{
		ID:       id,
		Consumer: "mcp-server-github",
		Provider: "gen",
		Scope:    []string{"repo:read", "issues:write"},
		Owner:    "platform-team",
		Labels:   map[string]string{"team": "platform", "env": "prod"},
		Settings: settings.Map{"role": "mcp_reports"},
		Policy: store.Policy{
			MaxAge:      time.Hour,
			RenewBefore: 15 * time.Minute,
			Schedule:    "0 3 * * *",
			Window:      &store.Window{Start: "02:00", End: "05:00", Timezone: "Europe/Berlin"},
			Grace:       10 * time.Minute,
		},
		Runbook:   "runbooks/generated.md#rotation",
		Targets:   []store.TargetBinding{{Target: "sm-github"}, {Target: "local-env", Key: "GITHUB_TOKEN"}},
		SpecHash:  "ch-" + id,
		State:     store.CredentialState{Status: store.StatusNew},
		CreatedAt: t0,
		UpdatedAt: t0,
	}
	for _, m := range mod {
		m(&c)
	}
	return c
}

// seed creates provider gen and the given credentials.
func seed(t *testing.T, s store.Store, creds ...store.Credential) {
	t.Helper()
	tx(t, s, func(tx store.Tx) error {
		if err := tx.UpsertProvider(t.Context(), provider("gen")); err != nil {
			return err
		}
		for _, c := range creds {
			if err := tx.UpsertCredentialSpec(t.Context(), c); err != nil {
				return err
			}
		}
		return nil
	})
}

func version(id, credentialID string, stage store.Stage, created time.Time) store.Version {
	return store.Version{
		ID:           id,
		CredentialID: credentialID,
		Stage:        stage,
		Sealed:       []byte("sealed:" + id),
		KeyID:        "k1",
		Fingerprint:  "fp-" + id,
		CreatedAt:    created,
		ExpiresAt:    created.Add(time.Hour),
		GrantedScope: []string{"repo:read"},
		Metadata:     map[string]string{"key_id": "provider-" + id},
	}
}

func run(id, credentialID string, created time.Time) store.Run {
	return store.Run{
		ID:           id,
		CredentialID: credentialID,
		Trigger:      store.TriggerSchedule,
		Actor:        "scheduler",
		Reason:       "due",
		State:        "planned",
		Active:       true,
		Attempt:      1,
		Priority:     2,
		Runbook:      store.RunbookRef{Path: "runbooks/generated.md", Anchor: "rotation", Digest: "sha256:abc"},
		CreatedAt:    created,
		UpdatedAt:    created,
	}
}

func ids[T any](items []T, id func(T) string) []string {
	out := []string{}
	for _, it := range items {
		out = append(out, id(it))
	}
	return out
}

func credIDs(cs []store.Credential) []string {
	return ids(cs, func(c store.Credential) string { return c.ID })
}

func testMigrateIdempotent(t *testing.T, s store.Store, ctx context.Context) {
	noErr(t, "second migrate", s.Migrate(ctx))
	noErr(t, "third migrate", s.Migrate(ctx))
	seed(t, s, credential("c1"))
	noErr(t, "migrate with data", s.Migrate(ctx))
	_, err := s.GetCredential(ctx, "c1")
	noErr(t, "get after migrate", err)
}

func testHandles(t *testing.T, s store.Store, ctx context.Context) {
	if d := s.Dialect(); d != store.DialectPostgres && d != store.DialectSQLite {
		t.Errorf("Dialect() = %q", d)
	}
	if s.Handle() == nil {
		t.Error("Handle() = nil")
	}
	tx(t, s, func(tx store.Tx) error {
		if tx.Raw() == nil {
			t.Error("Raw() = nil")
		}
		return nil
	})
}

func testProviders(t *testing.T, s store.Store, ctx context.Context) {
	ps, err := s.ListProviders(ctx)
	noErr(t, "list empty", err)
	equal(t, "empty list", len(ps), 0)

	b, a := provider("b"), provider("a")
	tx(t, s, func(tx store.Tx) error {
		noErr(t, "upsert b", tx.UpsertProvider(ctx, b))
		noErr(t, "upsert a", tx.UpsertProvider(ctx, a))
		got, err := tx.GetProvider(ctx, "a")
		noErr(t, "get in tx", err)
		equal(t, "provider in tx", got, a)
		return nil
	})
	got, err := s.GetProvider(ctx, "b")
	noErr(t, "get b", err)
	equal(t, "provider b", got, b)
	ps, err = s.ListProviders(ctx)
	noErr(t, "list", err)
	equal(t, "list", ps, []store.Provider{a, b})

	b2 := b
	b2.Type = "oauth2-client-credentials"
	b2.Settings = settings.Map{"token_url": "https://example.com/token"}
	b2.SpecHash = "ph-b2"
	b2.UpdatedAt = t0.Add(time.Minute)
	b2.CreatedAt = t0.Add(time.Hour) // ignored on update
	tx(t, s, func(tx store.Tx) error { return tx.UpsertProvider(ctx, b2) })
	got, err = s.GetProvider(ctx, "b")
	noErr(t, "get updated", err)
	b2.CreatedAt = t0
	equal(t, "updated provider", got, b2)

	tx(t, s, func(tx store.Tx) error { return tx.DeleteProvider(ctx, "b") })
	_, err = s.GetProvider(ctx, "b")
	isErr(t, "get deleted", err, store.ErrNotFound)
	ps, err = s.ListProviders(ctx)
	noErr(t, "list after delete", err)
	equal(t, "list after delete", ps, []store.Provider{a})
	err = s.InTx(ctx, func(tx store.Tx) error { return tx.DeleteProvider(ctx, "b") })
	isErr(t, "delete deleted", err, store.ErrNotFound)
	err = s.InTx(ctx, func(tx store.Tx) error { return tx.DeleteProvider(ctx, "nope") })
	isErr(t, "delete missing", err, store.ErrNotFound)
	_, err = s.GetProvider(ctx, "nope")
	isErr(t, "get missing", err, store.ErrNotFound)

	tx(t, s, func(tx store.Tx) error { return tx.UpsertProvider(ctx, b2) })
	got, err = s.GetProvider(ctx, "b")
	noErr(t, "get revived", err)
	equal(t, "revived provider", got, b2)
}

func testProviderDeleteInUse(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("c1"))
	err := s.InTx(ctx, func(tx store.Tx) error { return tx.DeleteProvider(ctx, "gen") })
	isErr(t, "delete provider in use", err, store.ErrConflict)
	_, err = s.GetProvider(ctx, "gen")
	noErr(t, "provider still there", err)
	// Deleted credentials keep referring to the provider, which may go.
	tx(t, s, func(tx store.Tx) error {
		if err := tx.DeleteCredential(ctx, "c1"); err != nil {
			return err
		}
		return tx.DeleteProvider(ctx, "gen")
	})
	_, err = s.GetProvider(ctx, "gen")
	isErr(t, "provider deleted", err, store.ErrNotFound)
}

func testCredentialUpsert(t *testing.T, s store.Store, ctx context.Context) {
	c := credential("github-mcp-token", func(c *store.Credential) { c.State.Status = "" })
	seed(t, s, c)
	got, err := s.GetCredential(ctx, c.ID)
	noErr(t, "get", err)
	c.State.Status = store.StatusNew // the default
	equal(t, "created credential", got, c)

	// Created with state: the state is written.
	withState := credential("with-state", func(c *store.Credential) {
		c.State = store.CredentialState{
			Status:         store.StatusHealthy,
			NextRotationAt: t0.Add(time.Hour),
			LastRotatedAt:  t0,
			ExpiresAt:      t0.Add(2 * time.Hour),
			FailureCount:   2,
		}
	})
	seed(t, s, withState)
	got, err = s.GetCredential(ctx, withState.ID)
	noErr(t, "get with state", err)
	equal(t, "credential created with state", got, withState)

	// Updating the spec keeps the state and the creation time.
	st := store.CredentialState{Status: store.StatusFailing, NextRotationAt: t0.Add(time.Minute), FailureCount: 3}
	tx(t, s, func(tx store.Tx) error { return tx.UpdateCredentialState(ctx, c.ID, st) })
	spec := credential(c.ID, func(n *store.Credential) {
		n.Consumer = "mcp-server-slack"
		n.Scope = []string{"chat:write"}
		n.Owner = "chat-team"
		n.Labels = map[string]string{"team": "chat"}
		n.Settings = settings.Map{"role": "other", "n": 3}
		n.Policy = store.Policy{MaxAge: 24 * time.Hour, RenewAt: 0.75, Grace: time.Minute}
		n.Runbook = "runbooks/other.md#x"
		n.Targets = nil
		n.SpecHash = "ch-2"
		n.State = store.CredentialState{Status: store.StatusHealthy} // ignored on update
		n.CreatedAt = t0.Add(time.Hour)                              // ignored on update
		n.UpdatedAt = t0.Add(2 * time.Minute)
	})
	tx(t, s, func(tx store.Tx) error { return tx.UpsertCredentialSpec(ctx, spec) })
	got, err = s.GetCredential(ctx, c.ID)
	noErr(t, "get updated", err)
	want := spec
	want.State = st
	want.CreatedAt = t0
	equal(t, "updated credential", got, want)
}

func testCredentialNotFound(t *testing.T, s store.Store, ctx context.Context) {
	_, err := s.GetCredential(ctx, "nope")
	isErr(t, "get missing credential", err, store.ErrNotFound)
	err = s.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.LockCredential(ctx, "nope")
		return err
	})
	isErr(t, "lock missing credential", err, store.ErrNotFound)
	err = s.InTx(ctx, func(tx store.Tx) error {
		return tx.UpdateCredentialState(ctx, "nope", store.CredentialState{Status: store.StatusDue})
	})
	isErr(t, "update state of missing credential", err, store.ErrNotFound)
	err = s.InTx(ctx, func(tx store.Tx) error { return tx.DeleteCredential(ctx, "nope") })
	isErr(t, "delete missing credential", err, store.ErrNotFound)
}

func testCredentialUnknownProvider(t *testing.T, s store.Store, ctx context.Context) {
	err := s.InTx(ctx, func(tx store.Tx) error {
		return tx.UpsertCredentialSpec(ctx, credential("c1", func(c *store.Credential) { c.Provider = "nope" }))
	})
	isErr(t, "credential of unknown provider", err, store.ErrNotFound)
}

func testCredentialState(t *testing.T, s store.Store, ctx context.Context) {
	c := credential("c1")
	seed(t, s, c)
	st := store.CredentialState{
		Status:         store.StatusRotating,
		NextRotationAt: t0.Add(45 * time.Minute),
		LastRotatedAt:  t0.Add(-time.Hour),
		ExpiresAt:      t0.Add(time.Hour),
		FailureCount:   1,
	}
	tx(t, s, func(tx store.Tx) error { return tx.UpdateCredentialState(ctx, c.ID, st) })
	got, err := s.GetCredential(ctx, c.ID)
	noErr(t, "get", err)
	if !got.UpdatedAt.After(t0) {
		t.Errorf("UpdatedAt = %v, want the time of the update", got.UpdatedAt)
	}
	want := c
	want.State = st
	want.UpdatedAt = got.UpdatedAt
	equal(t, "credential with state", got, want)

	// Zero times and ids are cleared.
	tx(t, s, func(tx store.Tx) error {
		return tx.UpdateCredentialState(ctx, c.ID, store.CredentialState{Status: store.StatusHealthy})
	})
	got, err = s.GetCredential(ctx, c.ID)
	noErr(t, "get cleared", err)
	equal(t, "cleared state", got.State, store.CredentialState{Status: store.StatusHealthy})
}

func testCredentialDeleteRevive(t *testing.T, s store.Store, ctx context.Context) {
	c := credential("c1")
	seed(t, s, c, credential("c2"))
	st := store.CredentialState{Status: store.StatusHealthy, LastRotatedAt: t0}
	tx(t, s, func(tx store.Tx) error {
		if err := tx.UpdateCredentialState(ctx, c.ID, st); err != nil {
			return err
		}
		return tx.DeleteCredential(ctx, c.ID)
	})
	_, err := s.GetCredential(ctx, c.ID)
	isErr(t, "get deleted", err, store.ErrNotFound)
	list, err := s.ListCredentials(ctx, store.CredentialFilter{})
	noErr(t, "list", err)
	equal(t, "list without deleted", credIDs(list), []string{"c2"})
	list, err = s.ListCredentials(ctx, store.CredentialFilter{IDs: []string{"c1"}})
	noErr(t, "list deleted by id", err)
	equal(t, "deleted by id", credIDs(list), []string{})
	err = s.InTx(ctx, func(tx store.Tx) error { return tx.DeleteCredential(ctx, c.ID) })
	isErr(t, "delete deleted", err, store.ErrNotFound)
	err = s.InTx(ctx, func(tx store.Tx) error { return tx.UpdateCredentialState(ctx, c.ID, st) })
	isErr(t, "update state of deleted", err, store.ErrNotFound)
	err = s.InTx(ctx, func(tx store.Tx) error {
		_, err := tx.LockCredential(ctx, c.ID)
		return err
	})
	isErr(t, "lock deleted", err, store.ErrNotFound)

	// Upserting revives it with the new spec and the old state.
	revived := credential(c.ID, func(c *store.Credential) {
		c.Consumer = "mcp-server-revived"
		c.UpdatedAt = t0.Add(time.Hour)
	})
	tx(t, s, func(tx store.Tx) error { return tx.UpsertCredentialSpec(ctx, revived) })
	got, err := s.GetCredential(ctx, c.ID)
	noErr(t, "get revived", err)
	want := revived
	want.State = st
	equal(t, "revived credential", got, want)
}

func testListCredentialsFilters(t *testing.T, s store.Store, ctx context.Context) {
	due := func(d time.Duration) func(*store.Credential) {
		return func(c *store.Credential) { c.State.NextRotationAt = t0.Add(d) }
	}
	seed(t, s,
		credential("a", due(-time.Hour), func(c *store.Credential) {
			c.Labels = map[string]string{"team": "platform", "env": "prod"}
		}),
		credential("b", due(0), func(c *store.Credential) {
			c.Consumer = "mcp-server-slack"
			c.Labels = map[string]string{"team": "platform", "env": "dev"}
		}),
		credential("c", due(time.Hour), func(c *store.Credential) {
			c.Labels = map[string]string{"team": "chat", "env": "prod", `we"ird key`: "v'al"}
		}),
		credential("d", func(c *store.Credential) { c.Labels = nil }),
	)
	tx(t, s, func(tx store.Tx) error {
		if err := tx.UpsertProvider(ctx, provider("other")); err != nil {
			return err
		}
		return tx.UpsertCredentialSpec(ctx, credential("e", due(-2*time.Hour), func(c *store.Credential) {
			c.Provider = "other"
			c.Consumer = "mcp-server-slack"
		}))
	})
	for name, tc := range map[string]struct {
		f    store.CredentialFilter
		want []string
	}{
		"all":                 {store.CredentialFilter{}, []string{"a", "b", "c", "d", "e"}},
		"consumer":            {store.CredentialFilter{Consumer: "mcp-server-slack"}, []string{"b", "e"}},
		"consumer none":       {store.CredentialFilter{Consumer: "nobody"}, []string{}},
		"provider":            {store.CredentialFilter{Provider: "other"}, []string{"e"}},
		"one label":           {store.CredentialFilter{Labels: map[string]string{"team": "platform"}}, []string{"a", "b", "e"}},
		"all labels":          {store.CredentialFilter{Labels: map[string]string{"team": "platform", "env": "prod"}}, []string{"a", "e"}},
		"label value differs": {store.CredentialFilter{Labels: map[string]string{"team": "nope"}}, []string{}},
		"odd label":           {store.CredentialFilter{Labels: map[string]string{`we"ird key`: "v'al"}}, []string{"c"}},
		"ids":                 {store.CredentialFilter{IDs: []string{"d", "b", "zz"}}, []string{"b", "d"}},
		"due before":          {store.CredentialFilter{DueBefore: t0}, []string{"a", "b", "e"}},
		"due before, exact":   {store.CredentialFilter{DueBefore: t0.Add(-time.Microsecond)}, []string{"a", "e"}},
		"combined": {store.CredentialFilter{
			Consumer: "mcp-server-github", Labels: map[string]string{"env": "prod"}, DueBefore: t0.Add(2 * time.Hour),
		}, []string{"a", "c"}},
		"limit":       {store.CredentialFilter{Limit: 2}, []string{"a", "b"}},
		"after":       {store.CredentialFilter{AfterID: "b"}, []string{"c", "d", "e"}},
		"after limit": {store.CredentialFilter{AfterID: "b", Limit: 1}, []string{"c"}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := s.ListCredentials(ctx, tc.f)
			noErr(t, "list", err)
			equal(t, "ids", credIDs(got), tc.want)
		})
	}
	tx(t, s, func(tx store.Tx) error {
		got, err := tx.ListCredentials(ctx, store.CredentialFilter{Labels: map[string]string{"team": "chat"}})
		noErr(t, "list in tx", err)
		equal(t, "list in tx", credIDs(got), []string{"c"})
		return nil
	})
	// The listed credentials are complete.
	got, err := s.ListCredentials(ctx, store.CredentialFilter{IDs: []string{"a"}})
	noErr(t, "list a", err)
	equal(t, "full credential", got, []store.Credential{credential("a", due(-time.Hour))})

	// A summary is the same credential without settings, window, targets
	// and the current version's sealed value.
	tx(t, s, func(tx store.Tx) error {
		if err := tx.InsertVersion(ctx, version("va", "a", store.StageCurrent, t0)); err != nil {
			return err
		}
		return tx.UpdateCredentialState(ctx, "a", store.CredentialState{Status: store.StatusHealthy, CurrentVersionID: "va"})
	})
	full, err := s.ListCredentials(ctx, store.CredentialFilter{IDs: []string{"a"}})
	noErr(t, "list a", err)
	sum, err := s.ListCredentials(ctx, store.CredentialFilter{IDs: []string{"a"}, Summary: true})
	noErr(t, "list a, summary", err)
	if len(full) != 1 || full[0].Current == nil || full[0].Current.Sealed == nil || full[0].Targets == nil || full[0].Policy.Window == nil || full[0].Settings == nil {
		t.Fatalf("the full listing lacks what the summary leaves out: %+v", full)
	}
	want := full[0]
	want.Settings, want.Policy.Window, want.Targets = nil, nil, nil
	cur := *want.Current
	cur.Sealed, cur.KeyID, cur.RetiredAt = nil, "", time.Time{}
	want.Current = &cur
	equal(t, "summary", sum, []store.Credential{want})
	sumPage, err := s.ListCredentials(ctx, store.CredentialFilter{Summary: true, Limit: 2})
	noErr(t, "summary page", err)
	equal(t, "summary page ids", credIDs(sumPage), []string{"a", "b"})
}

func testListCredentialsPaging(t *testing.T, s store.Store, ctx context.Context) {
	var all []store.Credential
	var want []string
	for i := range 25 {
		id := fmt.Sprintf("cred-%03d", i)
		all = append(all, credential(id))
		want = append(want, id)
	}
	seed(t, s, all...)
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > 10 {
			t.Fatal("paging does not end")
		}
		page, err := s.ListCredentials(ctx, store.CredentialFilter{Limit: 10, AfterID: after})
		noErr(t, "list page", err)
		if len(page) > 10 {
			t.Fatalf("page of %d, limit 10", len(page))
		}
		if len(page) == 0 {
			break
		}
		got = append(got, credIDs(page)...)
		after = page[len(page)-1].ID
	}
	equal(t, "paged ids", got, want)
}

func testLockCredential(t *testing.T, s store.Store, ctx context.Context) {
	c := credential("c1")
	seed(t, s, c)
	tx(t, s, func(tx store.Tx) error {
		got, err := tx.LockCredential(ctx, c.ID)
		noErr(t, "lock", err)
		equal(t, "locked credential", got, c)
		return nil
	})
	// Read-modify-write under the lock loses no update.
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			errs <- s.InTx(ctx, func(tx store.Tx) error {
				got, err := tx.LockCredential(ctx, c.ID)
				if err != nil {
					return err
				}
				got.State.FailureCount++
				return tx.UpdateCredentialState(ctx, c.ID, got.State)
			})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		noErr(t, "increment under lock", err)
	}
	got, err := s.GetCredential(ctx, c.ID)
	noErr(t, "get", err)
	equal(t, "failure count after concurrent increments", got.State.FailureCount, n)
}

func testVersions(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("c1"), credential("c2"))
	v1 := version("v1", "c1", store.StageCurrent, t0)
	v1.ActivatedAt = t0.Add(time.Second)
	v2 := version("v2", "c1", store.StagePending, t0.Add(time.Minute))
	other := version("o1", "c2", store.StagePending, t0)
	tx(t, s, func(tx store.Tx) error {
		for _, v := range []store.Version{v1, v2, other} {
			noErr(t, "insert "+v.ID, tx.InsertVersion(ctx, v))
		}
		return nil
	})
	got, err := s.GetVersion(ctx, "v1")
	noErr(t, "get v1", err)
	equal(t, "v1", got, v1)
	list, err := s.ListVersions(ctx, "c1")
	noErr(t, "list", err)
	equal(t, "versions newest first", list, []store.Version{v2, v1})
	list, err = s.ListVersions(ctx, "c1", store.StagePending)
	noErr(t, "list pending", err)
	equal(t, "pending versions", list, []store.Version{v2})
	list, err = s.ListVersions(ctx, "c1", store.StageCurrent, store.StagePrevious)
	noErr(t, "list current, previous", err)
	equal(t, "current and previous versions", list, []store.Version{v1})
	list, err = s.ListVersions(ctx, "nope")
	noErr(t, "list of unknown credential", err)
	equal(t, "versions of unknown credential", len(list), 0)

	// Promote v2: demote v1 first.
	v1.Stage = store.StagePrevious
	v2.Stage = store.StageCurrent
	v2.ActivatedAt = t0.Add(2 * time.Minute)
	v2.GrantedScope = []string{"repo:read", "issues:write"}
	v2.Metadata = map[string]string{"kid": "2"}
	tx(t, s, func(tx store.Tx) error {
		noErr(t, "demote v1", tx.UpdateVersion(ctx, v1))
		noErr(t, "promote v2", tx.UpdateVersion(ctx, v2))
		return nil
	})
	got, err = s.GetVersion(ctx, "v2")
	noErr(t, "get v2", err)
	equal(t, "promoted v2", got, v2)

	// Retiring clears the sealed value, whatever the caller passes.
	v1.Stage = store.StageRetired
	v1.RetiredAt = t0.Add(time.Hour)
	tx(t, s, func(tx store.Tx) error { return tx.UpdateVersion(ctx, v1) })
	got, err = s.GetVersion(ctx, "v1")
	noErr(t, "get retired", err)
	v1.Sealed = nil
	equal(t, "retired v1", got, v1)

	// Re-sealing under a new key writes the value and key id.
	v2.Sealed = []byte("resealed")
	v2.KeyID = "k2"
	tx(t, s, func(tx store.Tx) error { return tx.UpdateVersion(ctx, v2) })
	got, err = s.GetVersion(ctx, "v2")
	noErr(t, "get resealed", err)
	equal(t, "resealed v2", got, v2)

	other.Stage = store.StageDiscarded
	tx(t, s, func(tx store.Tx) error { return tx.UpdateVersion(ctx, other) })
	got, err = s.GetVersion(ctx, "o1")
	noErr(t, "get discarded", err)
	if got.Sealed != nil {
		t.Errorf("discarded version keeps its sealed value")
	}
}

func testVersionOneCurrent(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("c1"), credential("c2"))
	tx(t, s, func(tx store.Tx) error {
		noErr(t, "first current", tx.InsertVersion(ctx, version("v1", "c1", store.StageCurrent, t0)))
		noErr(t, "current of another credential", tx.InsertVersion(ctx, version("w1", "c2", store.StageCurrent, t0)))
		noErr(t, "pending", tx.InsertVersion(ctx, version("v2", "c1", store.StagePending, t0)))
		return nil
	})
	err := s.InTx(ctx, func(tx store.Tx) error {
		return tx.InsertVersion(ctx, version("v3", "c1", store.StageCurrent, t0))
	})
	isErr(t, "insert second current", err, store.ErrConflict)
	err = s.InTx(ctx, func(tx store.Tx) error {
		return tx.UpdateVersion(ctx, version("v2", "c1", store.StageCurrent, t0))
	})
	isErr(t, "promote without demoting", err, store.ErrConflict)
	list, err := s.ListVersions(ctx, "c1", store.StageCurrent)
	noErr(t, "list current", err)
	equal(t, "current versions", ids(list, func(v store.Version) string { return v.ID }), []string{"v1"})
}

func testVersionErrors(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("c1"))
	_, err := s.GetVersion(ctx, "nope")
	isErr(t, "get missing version", err, store.ErrNotFound)
	err = s.InTx(ctx, func(tx store.Tx) error {
		return tx.UpdateVersion(ctx, version("nope", "c1", store.StagePending, t0))
	})
	isErr(t, "update missing version", err, store.ErrNotFound)
	err = s.InTx(ctx, func(tx store.Tx) error {
		return tx.InsertVersion(ctx, version("v1", "nope", store.StagePending, t0))
	})
	isErr(t, "version of missing credential", err, store.ErrNotFound)
	tx(t, s, func(tx store.Tx) error { return tx.InsertVersion(ctx, version("v1", "c1", store.StagePending, t0)) })
	err = s.InTx(ctx, func(tx store.Tx) error {
		return tx.InsertVersion(ctx, version("v1", "c1", store.StagePending, t0))
	})
	isErr(t, "duplicate version id", err, store.ErrConflict)
	// The credential's version pointers must name versions, checked at commit.
	err = s.InTx(ctx, func(tx store.Tx) error {
		return tx.UpdateCredentialState(ctx, "c1", store.CredentialState{Status: store.StatusHealthy, CurrentVersionID: "nope"})
	})
	if err == nil {
		t.Error("current version pointing at no version: no error")
	}
}

func testCurrentVersionFilled(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("c1"), credential("c2"))
	v := version("v1", "c1", store.StageCurrent, t0)
	p := version("p1", "c1", store.StagePending, t0.Add(time.Second))
	// Pointer first, versions after: checked at commit.
	tx(t, s, func(tx store.Tx) error {
		noErr(t, "state", tx.UpdateCredentialState(ctx, "c1", store.CredentialState{
			Status: store.StatusRotating, CurrentVersionID: "v1", PendingVersionID: "p1",
		}))
		noErr(t, "insert current", tx.InsertVersion(ctx, v))
		noErr(t, "insert pending", tx.InsertVersion(ctx, p))
		return nil
	})
	got, err := s.GetCredential(ctx, "c1")
	noErr(t, "get", err)
	equal(t, "current version", got.Current, &v)
	equal(t, "pending id", got.State.PendingVersionID, "p1")
	list, err := s.ListCredentials(ctx, store.CredentialFilter{})
	noErr(t, "list", err)
	if len(list) != 2 {
		t.Fatalf("listed %d credentials, want 2", len(list))
	}
	equal(t, "listed current version", list[0].Current, &v)
	if list[1].Current != nil {
		t.Errorf("credential without a current version: Current = %+v", list[1].Current)
	}
	tx(t, s, func(tx store.Tx) error {
		got, err := tx.LockCredential(ctx, "c1")
		noErr(t, "lock", err)
		equal(t, "locked current version", got.Current, &v)
		return nil
	})
}

func testRuns(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("c1"))
	r := run("r1", "c1", t0)
	r.Options = json.RawMessage(`{"revoke_first":true}`)
	tx(t, s, func(tx store.Tx) error { return tx.InsertRun(ctx, r) })
	got, err := s.GetRun(ctx, "r1")
	noErr(t, "get", err)
	sameJSON(t, "run options", got.Options, r.Options) // Postgres normalizes jsonb
	got.Options = r.Options
	equal(t, "inserted run", got, r)

	tx(t, s, func(tx store.Tx) error {
		noErr(t, "insert old version", tx.InsertVersion(ctx, version("v0", "c1", store.StageCurrent, t0)))
		return tx.InsertVersion(ctx, version("v1", "c1", store.StagePending, t0))
	})
	r.State = "minted"
	r.Attempt = 2
	r.OldVersionID = "v0"
	r.NewVersionID = "v1"
	r.Error = "provider said no"
	r.StartedAt = t0.Add(time.Second)
	r.FinishedAt = t0.Add(time.Minute)
	r.UpdatedAt = t0.Add(time.Minute)
	r.Active = false
	r.Actor = "alice"
	r.Reason = "leak"
	r.Trigger = store.TriggerEmergency
	r.Priority = 4
	r.Options = nil
	r.Runbook = store.RunbookRef{Path: "runbooks/emergency.md", Anchor: "leak", Digest: "sha256:def"}
	r.CreatedAt = t0.Add(time.Hour) // not written by UpdateRun
	tx(t, s, func(tx store.Tx) error { return tx.UpdateRun(ctx, r) })
	got, err = s.GetRun(ctx, "r1")
	noErr(t, "get updated", err)
	r.CreatedAt = t0
	equal(t, "updated run", got, r)

	_, err = s.GetRun(ctx, "nope")
	isErr(t, "get missing run", err, store.ErrNotFound)
	err = s.InTx(ctx, func(tx store.Tx) error { return tx.UpdateRun(ctx, run("nope", "c1", t0)) })
	isErr(t, "update missing run", err, store.ErrNotFound)
	err = s.InTx(ctx, func(tx store.Tx) error {
		r := run("r1", "c1", t0)
		r.Active = false
		return tx.InsertRun(ctx, r)
	})
	isErr(t, "duplicate run id", err, store.ErrConflict)
	err = s.InTx(ctx, func(tx store.Tx) error { return tx.InsertRun(ctx, run("r9", "nope", t0)) })
	isErr(t, "run of missing credential", err, store.ErrNotFound)
}

func testRunOneActive(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("c1"), credential("c2"))
	tx(t, s, func(tx store.Tx) error {
		noErr(t, "first run", tx.InsertRun(ctx, run("r1", "c1", t0)))
		noErr(t, "run of another credential", tx.InsertRun(ctx, run("x1", "c2", t0)))
		return nil
	})
	// A second active run fails with ErrActiveRun and leaves the
	// transaction usable.
	tx(t, s, func(tx store.Tx) error {
		err := tx.InsertRun(ctx, run("r2", "c1", t0.Add(time.Second)))
		isErr(t, "second active run", err, store.ErrActiveRun)
		return tx.InsertAuditEvents(ctx, store.AuditEvent{Action: "run.skipped", CredentialID: "c1"})
	})
	_, err := s.GetRun(ctx, "r2")
	isErr(t, "rejected run", err, store.ErrNotFound)
	n := 0
	noErr(t, "scan", s.ScanAuditEvents(ctx, store.AuditFilter{}, func(store.AuditEvent) error { n++; return nil }))
	equal(t, "events written after ErrActiveRun", n, 1)

	// An inactive run may be inserted beside the active one.
	inactive := run("r0", "c1", t0.Add(-time.Hour))
	inactive.Active = false
	tx(t, s, func(tx store.Tx) error { return tx.InsertRun(ctx, inactive) })

	// Once the first run ends, a new one may start.
	r1, err := s.GetRun(ctx, "r1")
	noErr(t, "get r1", err)
	r1.Active = false
	r1.State = "succeeded"
	tx(t, s, func(tx store.Tx) error {
		noErr(t, "end r1", tx.UpdateRun(ctx, r1))
		return tx.InsertRun(ctx, run("r2", "c1", t0.Add(time.Second)))
	})
	// Reactivating the ended run now conflicts.
	r1.Active = true
	err = s.InTx(ctx, func(tx store.Tx) error { return tx.UpdateRun(ctx, r1) })
	isErr(t, "reactivate beside an active run", err, store.ErrActiveRun)
	active, err := s.ListRuns(ctx, store.RunFilter{CredentialID: "c1", ActiveOnly: true})
	noErr(t, "list active", err)
	equal(t, "active runs", ids(active, func(r store.Run) string { return r.ID }), []string{"r2"})
}

func testRunOneActiveConcurrent(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("c1"))
	const n = 8
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = s.InTx(ctx, func(tx store.Tx) error {
				return tx.InsertRun(ctx, run(fmt.Sprintf("r%d", i), "c1", t0))
			})
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for i, err := range errs {
		switch {
		case err == nil:
			won++
		case errors.Is(err, store.ErrActiveRun):
		default:
			t.Errorf("InsertRun %d: %v, want nil or ErrActiveRun", i, err)
		}
	}
	equal(t, "winners", won, 1)
	runs, err := s.ListRuns(ctx, store.RunFilter{CredentialID: "c1"})
	noErr(t, "list", err)
	equal(t, "runs stored", len(runs), 1)
}

func testListRunsFilters(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("c1"), credential("c2"))
	mk := func(id, cred string, created time.Duration, state string, trig store.Trigger, active bool) store.Run {
		r := run(id, cred, t0.Add(created))
		r.State, r.Trigger, r.Active = state, trig, active
		return r
	}
	runs := []store.Run{
		mk("r1", "c1", 0, "succeeded", store.TriggerSchedule, false),
		mk("r2", "c1", time.Minute, "rolled_back", store.TriggerManual, false),
		mk("r3", "c1", 2*time.Minute, "minting", store.TriggerEmergency, true),
		mk("r4", "c2", time.Minute, "succeeded", store.TriggerSchedule, false),
		mk("r5", "c2", time.Minute, "planned", store.TriggerAPI, true),
	}
	tx(t, s, func(tx store.Tx) error {
		for _, r := range runs {
			noErr(t, "insert "+r.ID, tx.InsertRun(ctx, r))
		}
		return nil
	})
	for name, tc := range map[string]struct {
		f    store.RunFilter
		want []string
	}{
		"all, newest first": {store.RunFilter{}, []string{"r3", "r5", "r4", "r2", "r1"}},
		"credential":        {store.RunFilter{CredentialID: "c1"}, []string{"r3", "r2", "r1"}},
		"state":             {store.RunFilter{State: "succeeded"}, []string{"r4", "r1"}},
		"trigger":           {store.RunFilter{Trigger: store.TriggerEmergency}, []string{"r3"}},
		"active":            {store.RunFilter{ActiveOnly: true}, []string{"r3", "r5"}},
		"since inclusive":   {store.RunFilter{Since: t0.Add(time.Minute)}, []string{"r3", "r5", "r4", "r2"}},
		"until exclusive":   {store.RunFilter{Until: t0.Add(time.Minute)}, []string{"r1"}},
		"since and until":   {store.RunFilter{Since: t0.Add(time.Minute), Until: t0.Add(2 * time.Minute)}, []string{"r5", "r4", "r2"}},
		"limit":             {store.RunFilter{Limit: 2}, []string{"r3", "r5"}},
		"combined":          {store.RunFilter{CredentialID: "c2", State: "succeeded", Limit: 5}, []string{"r4"}},
		// Keyset pages: after r5 (created at +1m) come r4 and r2 (same
		// time, smaller ids), then r1.
		"before r5":        {store.RunFilter{BeforeCreatedAt: t0.Add(time.Minute), BeforeID: "r5", Limit: 2}, []string{"r4", "r2"}},
		"before r2":        {store.RunFilter{BeforeCreatedAt: t0.Add(time.Minute), BeforeID: "r2"}, []string{"r1"}},
		"before r3, c1":    {store.RunFilter{CredentialID: "c1", BeforeCreatedAt: t0.Add(2 * time.Minute), BeforeID: "r3"}, []string{"r2", "r1"}},
		"before the first": {store.RunFilter{BeforeCreatedAt: t0, BeforeID: "r1"}, []string{}},
		"none":             {store.RunFilter{CredentialID: "nope"}, []string{}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := s.ListRuns(ctx, tc.f)
			noErr(t, "list", err)
			equal(t, "run ids", ids(got, func(r store.Run) string { return r.ID }), tc.want)
		})
	}
	got, err := s.ListRuns(ctx, store.RunFilter{CredentialID: "c1", Trigger: store.TriggerSchedule})
	noErr(t, "list r1", err)
	equal(t, "full run", got, []store.Run{runs[0]})
}

func testSteps(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("c1"))
	steps := []store.Step{
		{RunID: "r1", Seq: 1, Name: "minting", State: "ok", Attempt: 1, StartedAt: t0, FinishedAt: t0.Add(time.Second),
			Evidence: map[string]string{"fingerprint": "ab12"}},
		{RunID: "r1", Seq: 2, Name: "activating", State: "failed", Attempt: 1, StartedAt: t0.Add(time.Second),
			FinishedAt: t0.Add(2 * time.Second), Error: "timeout"},
		{RunID: "r1", Seq: 3, Name: "rolling_back", State: "ok", Attempt: 2, StartedAt: t0.Add(3 * time.Second)},
	}
	tx(t, s, func(tx store.Tx) error {
		noErr(t, "insert run", tx.InsertRun(ctx, run("r1", "c1", t0)))
		for _, i := range []int{2, 0, 1} { // out of order
			noErr(t, fmt.Sprintf("insert step %d", steps[i].Seq), tx.InsertStep(ctx, steps[i]))
		}
		return nil
	})
	got, err := s.ListSteps(ctx, "r1")
	noErr(t, "list", err)
	equal(t, "steps in order", got, steps)
	got, err = s.ListSteps(ctx, "nope")
	noErr(t, "list of missing run", err)
	equal(t, "steps of missing run", len(got), 0)
	err = s.InTx(ctx, func(tx store.Tx) error { return tx.InsertStep(ctx, steps[0]) })
	isErr(t, "duplicate step", err, store.ErrConflict)
	err = s.InTx(ctx, func(tx store.Tx) error {
		return tx.InsertStep(ctx, store.Step{RunID: "nope", Seq: 1, Name: "minting", State: "ok"})
	})
	isErr(t, "step of missing run", err, store.ErrNotFound)
	// One missing run among several fails the whole insert.
	err = s.InTx(ctx, func(tx store.Tx) error {
		return tx.InsertStep(ctx, store.Step{RunID: "r1", Seq: 90, Name: "minting", State: "ok"},
			store.Step{RunID: "nope", Seq: 1, Name: "minting", State: "ok"})
	})
	isErr(t, "steps of a present and a missing run", err, store.ErrNotFound)
	got, err = s.ListSteps(ctx, "r1")
	noErr(t, "list after the failed insert", err)
	equal(t, "steps after the failed insert", got, steps)
}

// collect scans events with f.
func collect(t *testing.T, s store.Reader, f store.AuditFilter) []store.AuditEvent {
	t.Helper()
	var out []store.AuditEvent
	noErr(t, "scan audit events", s.ScanAuditEvents(t.Context(), f, func(ev store.AuditEvent) error {
		out = append(out, ev)
		return nil
	}))
	return out
}

func actions(evs []store.AuditEvent) []string {
	return ids(evs, func(ev store.AuditEvent) string { return ev.Action })
}

// sealAll seals the unsealed events in ID order, continuing the chain
// after seq, and returns the last seq.
func sealAll(t *testing.T, s store.Store, seq int64, limit int) int64 {
	t.Helper()
	tx(t, s, func(tx store.Tx) error {
		evs := collect(t, tx, store.AuditFilter{Unsealed: true, Limit: limit})
		for i := range evs {
			seq++
			evs[i].Seq = seq
			evs[i].PrevHash = fmt.Sprintf("h%d", seq-1)
			evs[i].Hash = fmt.Sprintf("h%d", seq)
			evs[i].SealedAt = t0.Add(time.Hour)
		}
		return tx.SealAuditEvents(t.Context(), evs)
	})
	return seq
}

func testAuditSealing(t *testing.T, s store.Store, ctx context.Context) {
	tx(t, s, func(tx store.Tx) error {
		noErr(t, "insert a", tx.InsertAuditEvents(ctx, store.AuditEvent{Action: "a", OccurredAt: t0, Actor: "alice"}))
		return tx.InsertAuditEvents(ctx,
			store.AuditEvent{Action: "b", OccurredAt: t0, CredentialID: "c1", RunID: "r1", Data: json.RawMessage(`{"fingerprint":"ab"}`)},
			store.AuditEvent{Action: "c", OccurredAt: t0.Add(time.Second),
				Seq: 99, Hash: "ignored"}, // inserted unsealed whatever the caller says
		)
	})
	unsealed := collect(t, s, store.AuditFilter{Unsealed: true})
	equal(t, "unsealed in insertion order", actions(unsealed), []string{"a", "b", "c"})
	for i, ev := range unsealed {
		if ev.ID == 0 || ev.Seq != 0 || ev.Hash != "" || !ev.SealedAt.IsZero() {
			t.Errorf("unsealed event %d: %+v", i, ev)
		}
		if i > 0 && ev.ID <= unsealed[i-1].ID {
			t.Errorf("ids not increasing: %d after %d", ev.ID, unsealed[i-1].ID)
		}
	}
	want := store.AuditEvent{ID: unsealed[1].ID, Action: "b", OccurredAt: t0, CredentialID: "c1", RunID: "r1",
		Data: json.RawMessage(`{"fingerprint": "ab"}`)}
	if unsealed[1].Data == nil {
		t.Fatal("event data lost")
	}
	want.Data = unsealed[1].Data // compared below as JSON
	equal(t, "unsealed event", unsealed[1], want)

	seq := sealAll(t, s, 0, 2)
	equal(t, "sealed two", seq, int64(2))
	tx(t, s, func(tx store.Tx) error {
		return tx.InsertAuditEvents(ctx, store.AuditEvent{Action: "d", OccurredAt: t0})
	})
	equal(t, "unsealed left", actions(collect(t, s, store.AuditFilter{Unsealed: true})), []string{"c", "d"})
	seq = sealAll(t, s, seq, 0)
	equal(t, "sealed all", seq, int64(4))
	equal(t, "nothing unsealed", len(collect(t, s, store.AuditFilter{Unsealed: true})), 0)

	sealed := collect(t, s, store.AuditFilter{})
	equal(t, "sealed in seq order", actions(sealed), []string{"a", "b", "c", "d"})
	for i, ev := range sealed {
		if ev.Seq != int64(i+1) || ev.Hash != fmt.Sprintf("h%d", i+1) || ev.PrevHash != fmt.Sprintf("h%d", i) ||
			!ev.SealedAt.Equal(t0.Add(time.Hour)) {
			t.Errorf("sealed event %d: %+v", i, ev)
		}
	}
	equal(t, "after seq 2", actions(collect(t, s, store.AuditFilter{AfterSeq: 2})), []string{"c", "d"})
	equal(t, "after seq 4", len(collect(t, s, store.AuditFilter{AfterSeq: 4})), 0)

	// Sealed events come in seq order even where it differs from id order.
	tx(t, s, func(tx store.Tx) error {
		return tx.InsertAuditEvents(ctx, store.AuditEvent{Action: "e", OccurredAt: t0}, store.AuditEvent{Action: "f", OccurredAt: t0})
	})
	tx(t, s, func(tx store.Tx) error {
		evs := collect(t, tx, store.AuditFilter{Unsealed: true})
		evs[0].Seq, evs[1].Seq = 6, 5
		evs[0].Hash, evs[1].Hash = "h6", "h5"
		return tx.SealAuditEvents(ctx, evs)
	})
	equal(t, "seq order", actions(collect(t, s, store.AuditFilter{AfterSeq: 4})), []string{"f", "e"})
	// Unsealed events follow sealed ones in a full scan.
	tx(t, s, func(tx store.Tx) error {
		return tx.InsertAuditEvents(ctx, store.AuditEvent{Action: "g", OccurredAt: t0})
	})
	equal(t, "full scan", actions(collect(t, s, store.AuditFilter{})), []string{"a", "b", "c", "d", "f", "e", "g"})
	equal(t, "newest 3", actions(collect(t, s, store.AuditFilter{Limit: 3, Newest: true})), []string{"f", "e", "g"})
	equal(t, "newest 1", actions(collect(t, s, store.AuditFilter{Limit: 1, Newest: true})), []string{"g"})
	equal(t, "newest sealed after seq", actions(collect(t, s, store.AuditFilter{AfterSeq: 2, Limit: 2, Newest: true})), []string{"f", "e"})
	equal(t, "newest unsealed", actions(collect(t, s, store.AuditFilter{Unsealed: true, Limit: 5, Newest: true})), []string{"g"})
	equal(t, "after seq excludes unsealed", actions(collect(t, s, store.AuditFilter{AfterSeq: 5})), []string{"e"})
}

func testAuditFilters(t *testing.T, s store.Store, ctx context.Context) {
	tx(t, s, func(tx store.Tx) error {
		return tx.InsertAuditEvents(ctx,
			store.AuditEvent{Action: "a", OccurredAt: t0, CredentialID: "c1", RunID: "r1"},
			store.AuditEvent{Action: "b", OccurredAt: t0.Add(time.Minute), CredentialID: "c1", RunID: "r2"},
			store.AuditEvent{Action: "c", OccurredAt: t0.Add(2 * time.Minute), CredentialID: "c2", RunID: "r3"},
			store.AuditEvent{Action: "d", OccurredAt: t0.Add(3 * time.Minute)},
		)
	})
	for _, sealed := range []bool{false, true} {
		if sealed {
			sealAll(t, s, 0, 0)
		}
		for name, tc := range map[string]struct {
			f    store.AuditFilter
			want []string
		}{
			"credential":      {store.AuditFilter{CredentialID: "c1"}, []string{"a", "b"}},
			"run":             {store.AuditFilter{RunID: "r3"}, []string{"c"}},
			"since inclusive": {store.AuditFilter{Since: t0.Add(time.Minute)}, []string{"b", "c", "d"}},
			"until exclusive": {store.AuditFilter{Until: t0.Add(time.Minute)}, []string{"a"}},
			"since and until": {store.AuditFilter{Since: t0.Add(time.Minute), Until: t0.Add(3 * time.Minute)}, []string{"b", "c"}},
			"limit":           {store.AuditFilter{Limit: 3}, []string{"a", "b", "c"}},
			"combined":        {store.AuditFilter{CredentialID: "c1", Since: t0.Add(time.Second), Limit: 5}, []string{"b"}},
			"newest":          {store.AuditFilter{Limit: 3, Newest: true}, []string{"b", "c", "d"}},
			"newest, more":    {store.AuditFilter{Limit: 9, Newest: true}, []string{"a", "b", "c", "d"}},
			"newest filtered": {store.AuditFilter{CredentialID: "c1", Until: t0.Add(time.Minute), Limit: 1, Newest: true}, []string{"a"}},
		} {
			t.Run(fmt.Sprintf("%s/sealed=%v", name, sealed), func(t *testing.T) {
				equal(t, "actions", actions(collect(t, s, tc.f)), tc.want)
			})
		}
	}
	// Returning an error from fn stops the scan with that error.
	stop := errors.New("stop")
	n := 0
	err := s.ScanAuditEvents(ctx, store.AuditFilter{}, func(store.AuditEvent) error {
		n++
		return stop
	})
	isErr(t, "scan stopped by fn", err, stop)
	equal(t, "events seen before stop", n, 1)
}

func testAuditPaging(t *testing.T, s store.Store, ctx context.Context) {
	// More events than one insert statement and two scan pages hold.
	const n = 1100
	evs := make([]store.AuditEvent, n)
	for i := range evs {
		evs[i] = store.AuditEvent{Action: fmt.Sprintf("e%04d", i), OccurredAt: t0, CredentialID: "c1"}
	}
	tx(t, s, func(tx store.Tx) error { return tx.InsertAuditEvents(ctx, evs...) })
	check := func(what string, f store.AuditFilter, want int) {
		t.Helper()
		i := 0
		err := s.ScanAuditEvents(ctx, f, func(ev store.AuditEvent) error {
			if ev.Action != fmt.Sprintf("e%04d", i) {
				return fmt.Errorf("event %d is %s", i, ev.Action)
			}
			i++
			// fn may use the store while scanning.
			if i%1000 == 0 {
				if _, err := s.ListProviders(ctx); err != nil {
					return err
				}
			}
			return nil
		})
		noErr(t, what, err)
		equal(t, what+": events", i, want)
	}
	check("unsealed", store.AuditFilter{Unsealed: true}, n)
	check("unsealed, limit", store.AuditFilter{Unsealed: true, Limit: 1001}, 1001)
	sealAll(t, s, 0, 0)
	check("sealed", store.AuditFilter{CredentialID: "c1"}, n)
	check("sealed, limit", store.AuditFilter{Limit: 777}, 777)
	// The newest events across more than one page, still in chain order.
	i := n - 1001
	err := s.ScanAuditEvents(ctx, store.AuditFilter{Limit: 1001, Newest: true}, func(ev store.AuditEvent) error {
		if ev.Action != fmt.Sprintf("e%04d", i) {
			return fmt.Errorf("newest: event %d is %s", i, ev.Action)
		}
		i++
		return nil
	})
	noErr(t, "newest 1001", err)
	equal(t, "newest 1001: last event", i, n)
	tx(t, s, func(tx store.Tx) error {
		i := 0
		err := tx.ScanAuditEvents(ctx, store.AuditFilter{}, func(ev store.AuditEvent) error {
			i++
			if i == 600 { // the transaction is usable while scanning
				return tx.InsertAuditEvents(ctx, store.AuditEvent{Action: "during-scan", OccurredAt: t0})
			}
			return nil
		})
		noErr(t, "scan in tx", err)
		equal(t, "events scanned in tx", i, n+1)
		return nil
	})
}

func testAuditSealConflicts(t *testing.T, s store.Store, ctx context.Context) {
	tx(t, s, func(tx store.Tx) error {
		return tx.InsertAuditEvents(ctx, store.AuditEvent{Action: "a", OccurredAt: t0}, store.AuditEvent{Action: "b", OccurredAt: t0})
	})
	evs := collect(t, s, store.AuditFilter{Unsealed: true})
	evs[0].Seq, evs[0].Hash = 1, "h1"
	tx(t, s, func(tx store.Tx) error { return tx.SealAuditEvents(ctx, evs[:1]) })
	err := s.InTx(ctx, func(tx store.Tx) error { return tx.SealAuditEvents(ctx, evs[:1]) })
	isErr(t, "seal twice", err, store.ErrConflict)
	evs[1].Seq, evs[1].Hash = 1, "h1'"
	err = s.InTx(ctx, func(tx store.Tx) error { return tx.SealAuditEvents(ctx, evs[1:]) })
	isErr(t, "seq taken", err, store.ErrConflict)
	missing := store.AuditEvent{ID: 999999, Seq: 2, Hash: "h2"}
	err = s.InTx(ctx, func(tx store.Tx) error { return tx.SealAuditEvents(ctx, []store.AuditEvent{missing}) })
	isErr(t, "seal missing event", err, store.ErrConflict)
	equal(t, "still unsealed", actions(collect(t, s, store.AuditFilter{Unsealed: true})), []string{"b"})
}

func testInTxRollback(t *testing.T, s store.Store, ctx context.Context) {
	boom := errors.New("boom")
	err := s.InTx(ctx, func(tx store.Tx) error {
		noErr(t, "provider", tx.UpsertProvider(ctx, provider("gen")))
		noErr(t, "credential", tx.UpsertCredentialSpec(ctx, credential("c1")))
		noErr(t, "version", tx.InsertVersion(ctx, version("v1", "c1", store.StageCurrent, t0)))
		noErr(t, "run", tx.InsertRun(ctx, run("r1", "c1", t0)))
		noErr(t, "audit", tx.InsertAuditEvents(ctx, store.AuditEvent{Action: "a"}))
		got, err := tx.GetCredential(ctx, "c1")
		noErr(t, "read own write", err)
		equal(t, "read own write", got.ID, "c1")
		return fmt.Errorf("step failed: %w", boom)
	})
	isErr(t, "InTx returns fn's error", err, boom)
	assertEmpty(t, s)
}

// testChangeMark: a committed InTx moves the mark, a rolled back one and
// InAuditTx do not; InAuditTx's events (queued on Postgres) are committed.
func testChangeMark(t *testing.T, s store.Store, ctx context.Context) {
	ct, ok := s.(store.ChangeTracker)
	if !ok {
		t.Fatalf("%T is no store.ChangeTracker", s)
	}
	mark := func() store.ChangeMark {
		t.Helper()
		var m store.ChangeMark
		noErr(t, "audit tx", ct.InAuditTx(ctx, func(tx store.AuditTx) error {
			var err error
			m, err = tx.ChangeMark(ctx)
			return err
		}))
		return m
	}
	m0 := mark()
	equal(t, "mark after an audit tx", mark(), m0)
	noErr(t, "audit events", ct.InAuditTx(ctx, func(tx store.AuditTx) error {
		return tx.InsertAuditEvents(ctx, store.AuditEvent{Action: "value.read", OccurredAt: t0},
			store.AuditEvent{Action: "value.read", OccurredAt: t0})
	}))
	equal(t, "audit events committed", actions(collect(t, s, store.AuditFilter{})), []string{"value.read", "value.read"})
	equal(t, "mark after inserting audit events", mark(), m0)
	_ = s.InTx(ctx, func(tx store.Tx) error {
		noErr(t, "provider", tx.UpsertProvider(ctx, provider("gen")))
		return errors.New("rolled back")
	})
	equal(t, "mark after a rollback", mark(), m0)
	seed(t, s, credential("c1"))
	if m := mark(); m == m0 || m.Local <= m0.Local {
		t.Errorf("mark after a commit: %+v, before %+v; want Local moved", m, m0)
	}
	equal(t, "ChangesExact", ct.ChangesExact(), s.Dialect() == store.DialectSQLite)
}

func testInTxPanic(t *testing.T, s store.Store, ctx context.Context) {
	func() {
		defer func() {
			if p := recover(); p != "boom" {
				t.Errorf("recovered %v, want the panic of fn", p)
			}
		}()
		_ = s.InTx(ctx, func(tx store.Tx) error {
			noErr(t, "provider", tx.UpsertProvider(ctx, provider("gen")))
			panic("boom")
		})
	}()
	assertEmpty(t, s)
	// The store is still usable (SQLite: the connection was released).
	seed(t, s, credential("c1"))
}

func assertEmpty(t *testing.T, s store.Store) {
	t.Helper()
	ctx := t.Context()
	ps, err := s.ListProviders(ctx)
	noErr(t, "list providers", err)
	cs, err := s.ListCredentials(ctx, store.CredentialFilter{})
	noErr(t, "list credentials", err)
	rs, err := s.ListRuns(ctx, store.RunFilter{})
	noErr(t, "list runs", err)
	vs, err := s.ListVersions(ctx, "c1")
	noErr(t, "list versions", err)
	evs := collect(t, s, store.AuditFilter{})
	if len(ps)+len(cs)+len(rs)+len(vs)+len(evs) != 0 {
		t.Errorf("rolled back transaction left %d providers, %d credentials, %d versions, %d runs, %d events",
			len(ps), len(cs), len(vs), len(rs), len(evs))
	}
}

func testTimesRoundTrip(t *testing.T, s store.Store, ctx context.Context) {
	zone := time.FixedZone("UTC+5:30", 5*3600+1800)
	in := []time.Time{
		time.Date(2026, 3, 4, 5, 6, 7, 123456789, zone),
		time.Date(1969, 12, 31, 23, 59, 59, 999999999, time.UTC), // before the epoch
		time.Date(2262, 1, 1, 0, 0, 0, 1000, time.UTC),
		time.Date(2026, 3, 4, 5, 6, 7, 999, time.UTC), // below a microsecond
	}
	seed(t, s)
	for i, tm := range in {
		id := fmt.Sprintf("c%d", i)
		want := tm.Truncate(time.Microsecond).UTC()
		if tm.Before(time.Unix(0, 0)) {
			// Truncate rounds toward the zero time, not the epoch; the
			// store keeps whole microseconds either way.
			want = time.UnixMicro(tm.UnixMicro()).UTC()
		}
		tx(t, s, func(tx store.Tx) error {
			noErr(t, "credential", tx.UpsertCredentialSpec(ctx, credential(id, func(c *store.Credential) {
				c.CreatedAt = tm
				c.State.NextRotationAt = tm
			})))
			v := version("v"+id, id, store.StagePending, tm)
			v.ActivatedAt, v.ExpiresAt, v.RetiredAt = tm, tm, tm
			noErr(t, "version", tx.InsertVersion(ctx, v))
			r := run("r"+id, id, tm)
			r.StartedAt, r.FinishedAt, r.UpdatedAt = tm, tm, tm
			noErr(t, "run", tx.InsertRun(ctx, r))
			noErr(t, "step", tx.InsertStep(ctx, store.Step{RunID: "r" + id, Seq: 1, Name: "x", State: "ok", StartedAt: tm, FinishedAt: tm}))
			return tx.InsertAuditEvents(ctx, store.AuditEvent{Action: id, OccurredAt: tm})
		})
		c, err := s.GetCredential(ctx, id)
		noErr(t, "get credential", err)
		v, err := s.GetVersion(ctx, "v"+id)
		noErr(t, "get version", err)
		r, err := s.GetRun(ctx, "r"+id)
		noErr(t, "get run", err)
		steps, err := s.ListSteps(ctx, "r"+id)
		noErr(t, "list steps", err)
		var ev store.AuditEvent
		noErr(t, "scan", s.ScanAuditEvents(ctx, store.AuditFilter{}, func(e store.AuditEvent) error {
			if e.Action == id {
				ev = e
			}
			return nil
		}))
		for name, got := range map[string]time.Time{
			"credential created": c.CreatedAt, "next rotation": c.State.NextRotationAt,
			"version created": v.CreatedAt, "activated": v.ActivatedAt, "expires": v.ExpiresAt, "retired": v.RetiredAt,
			"run created": r.CreatedAt, "started": r.StartedAt, "finished": r.FinishedAt, "run updated": r.UpdatedAt,
			"step started": steps[0].StartedAt, "step finished": steps[0].FinishedAt, "occurred": ev.OccurredAt,
		} {
			if !got.Equal(want) || got.Location() != time.UTC {
				t.Errorf("time %d, %s: got %v (%v), want %v in UTC", i, name, got, got.Location(), want)
			}
		}
	}
	// Range queries are exact at microsecond precision.
	got, err := s.ListCredentials(ctx, store.CredentialFilter{DueBefore: in[0].Truncate(time.Microsecond).Add(-time.Microsecond)})
	noErr(t, "due just before", err)
	equal(t, "due a microsecond before", credIDs(got), []string{"c1"})
	got, err = s.ListCredentials(ctx, store.CredentialFilter{DueBefore: in[0]})
	noErr(t, "due at", err)
	equal(t, "due at the time", credIDs(got), []string{"c0", "c1"})
	// Zero times stay zero.
	c, err := s.GetCredential(ctx, "c0")
	noErr(t, "get", err)
	if !c.State.LastRotatedAt.IsZero() || !c.State.ExpiresAt.IsZero() {
		t.Errorf("zero times came back as %v, %v", c.State.LastRotatedAt, c.State.ExpiresAt)
	}
}

func testJSONRoundTrip(t *testing.T, s store.Store, ctx context.Context) {
	c := credential("c1", func(c *store.Credential) {
		c.Scope = []string{"SELECT on reporting.*", `quote " and \ backslash`, "ünïcødé"}
		c.Labels = map[string]string{"team": "platform", "a.b/c": "x=y", "empty": ""}
		c.Policy.RenewAt = 0.8
		c.Policy.RenewBefore = 0
	})
	seed(t, s, c)
	got, err := s.GetCredential(ctx, "c1")
	noErr(t, "get", err)
	equal(t, "credential with JSON fields", got, c)

	// Empty collections come back nil.
	empty := credential("c2", func(c *store.Credential) {
		c.Scope, c.Labels, c.Settings, c.Targets, c.Policy.Window = []string{}, map[string]string{}, settings.Map{}, nil, nil
	})
	seed(t, s, empty)
	got, err = s.GetCredential(ctx, "c2")
	noErr(t, "get empty", err)
	empty.Scope, empty.Labels, empty.Settings = nil, nil, nil
	equal(t, "credential with empty JSON fields", got, empty)

	v := version("v1", "c1", store.StagePending, t0)
	v.GrantedScope = []string{"repo:read", "admin:org"}
	v.Metadata = map[string]string{"key_id": "AKIA...", "nested": `{"not":"parsed"}`}
	r := run("r1", "c1", t0)
	r.Options = json.RawMessage(`{"revoke_first": true, "targets": ["a", "b"], "n": 1.5}`)
	st := store.Step{RunID: "r1", Seq: 1, Name: "verifying", State: "ok",
		Evidence: map[string]string{"probe": "200 OK", "scope": "repo:read"}}
	tx(t, s, func(tx store.Tx) error {
		noErr(t, "version", tx.InsertVersion(ctx, v))
		noErr(t, "run", tx.InsertRun(ctx, r))
		return tx.InsertStep(ctx, st)
	})
	gv, err := s.GetVersion(ctx, "v1")
	noErr(t, "get version", err)
	equal(t, "version", gv, v)
	gr, err := s.GetRun(ctx, "r1")
	noErr(t, "get run", err)
	sameJSON(t, "run options", gr.Options, r.Options)
	gr.Options = r.Options
	equal(t, "run", gr, r)
	steps, err := s.ListSteps(ctx, "r1")
	noErr(t, "steps", err)
	equal(t, "steps", steps, []store.Step{st})

	err = s.InTx(ctx, func(tx store.Tx) error {
		r := run("r2", "c2", t0)
		r.Options = json.RawMessage(`{not json`)
		return tx.InsertRun(ctx, r)
	})
	if err == nil {
		t.Error("run options that are not JSON: no error")
	}
}

func testSettingsNestedRoundTrip(t *testing.T, s store.Store, ctx context.Context) {
	// As YAML decodes them: whole numbers are int, others float64.
	m := settings.Map{
		"token_url": "https://example.okta.com/oauth2/default/v1/token",
		"length":    40,
		"ratio":     0.25,
		"big":       1 << 53,
		"negative":  -7,
		"enabled":   true,
		"nothing":   nil,
		"scopes":    []any{"a", "b", 3, false, map[string]any{"deep": []any{1.5, "x"}}},
		"verify": map[string]any{
			"mcp_probe": map[string]any{"url": "https://mcp.example.com/mcp", "timeout": "5s", "retries": 2},
		},
		"empty_list": []any{},
		"empty_map":  map[string]any{},
	}
	p := provider("gen")
	p.Settings = m
	c := credential("c1", func(c *store.Credential) { c.Settings = m })
	tx(t, s, func(tx store.Tx) error {
		noErr(t, "provider", tx.UpsertProvider(ctx, p))
		return tx.UpsertCredentialSpec(ctx, c)
	})
	gp, err := s.GetProvider(ctx, "gen")
	noErr(t, "get provider", err)
	equal(t, "provider settings", gp.Settings, m)
	gc, err := s.GetCredential(ctx, "c1")
	noErr(t, "get credential", err)
	equal(t, "credential settings", gc.Settings, m)
	// The settings reader takes them back.
	verify := settings.NewReader(gc.Settings).Map("verify")
	r := settings.NewReader(settings.NewReader(verify).Map("mcp_probe"))
	equal(t, "retries", r.Int("retries", 0, 0, 10), 2)
	equal(t, "reader errors", len(r.Errors()), 0)
}

func testAuditDataRoundTrip(t *testing.T, s store.Store, ctx context.Context) {
	data := json.RawMessage(`{"fingerprint":"ab12cd34","diff":{"scope":["+a","-b"]},"n":3,"ok":true,"u":"ünï \"q\""}`)
	tx(t, s, func(tx store.Tx) error {
		noErr(t, "insert", tx.InsertAuditEvents(ctx,
			store.AuditEvent{Action: "with-data", Data: data, Actor: "bob"},
			store.AuditEvent{Action: "without-data"},
		))
		err := tx.InsertAuditEvents(ctx, store.AuditEvent{Action: "bad", Data: json.RawMessage(`{oops`)})
		if err == nil {
			t.Error("audit data that is not JSON: no error")
		}
		return nil
	})
	evs := collect(t, s, store.AuditFilter{})
	if len(evs) != 2 {
		t.Fatalf("events: %+v", evs)
	}
	sameJSON(t, "audit data", evs[0].Data, data)
	if evs[1].Data != nil {
		t.Errorf("event without data came back with %s", evs[1].Data)
	}
	if evs[0].OccurredAt.IsZero() || evs[0].Actor != "bob" {
		t.Errorf("event: %+v", evs[0])
	}
}

func testReadsSeeCommitted(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("c1"))
	// Reads on the store, outside any transaction, see committed writes.
	got, err := s.ListCredentials(ctx, store.CredentialFilter{Consumer: "mcp-server-github"})
	noErr(t, "list", err)
	equal(t, "committed credential", credIDs(got), []string{"c1"})
	names := []string{}
	ps, err := s.ListProviders(ctx)
	noErr(t, "providers", err)
	for _, p := range ps {
		names = append(names, p.Name)
	}
	if !slices.Equal(names, []string{"gen"}) {
		t.Errorf("providers %v", names)
	}
}

func sameJSON(t *testing.T, what string, got, want json.RawMessage) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Errorf("%s: got %s: %v", what, got, err)
		return
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatalf("%s: want %s: %v", what, want, err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got  %s\n want %s", what, got, want)
	}
}

func testTargets(t *testing.T, s store.Store, ctx context.Context) {
	ts, err := s.ListTargets(ctx)
	noErr(t, "list empty", err)
	equal(t, "empty list", len(ts), 0)
	sm := store.Target{Name: "sm-github", Type: "aws-secretsmanager", SpecHash: "th1",
		Settings: settings.Map{"secret_id": "mcp/github-token", "tags": map[string]any{"team": "x"}}, CreatedAt: t0, UpdatedAt: t0}
	file := store.Target{Name: "local-env", Type: "file", Settings: settings.Map{"path": "./run/mcp.env", "mode": 384},
		CreatedAt: t0, UpdatedAt: t0}
	tx(t, s, func(tx store.Tx) error {
		noErr(t, "upsert sm", tx.UpsertTarget(ctx, sm))
		return tx.UpsertTarget(ctx, file)
	})
	got, err := s.GetTarget(ctx, "sm-github")
	noErr(t, "get", err)
	equal(t, "target", got, sm)
	ts, err = s.ListTargets(ctx)
	noErr(t, "list", err)
	equal(t, "targets by name", ts, []store.Target{file, sm})
	_, err = s.GetProvider(ctx, "sm-github")
	isErr(t, "a target is no provider", err, store.ErrNotFound)

	sm.Type, sm.SpecHash, sm.UpdatedAt = "file", "th2", t0.Add(time.Minute)
	tx(t, s, func(tx store.Tx) error { return tx.UpsertTarget(ctx, sm) })
	got, err = s.GetTarget(ctx, "sm-github")
	noErr(t, "get updated", err)
	equal(t, "updated target", got, sm)

	// A target in use by a live credential cannot go.
	seed(t, s, credential("c1")) // targets sm-github and local-env
	err = s.InTx(ctx, func(tx store.Tx) error { return tx.DeleteTarget(ctx, "local-env") })
	isErr(t, "delete target in use", err, store.ErrConflict)
	tx(t, s, func(tx store.Tx) error {
		c := credential("c1", func(c *store.Credential) { c.Targets = []store.TargetBinding{{Target: "sm-github"}} })
		noErr(t, "unbind", tx.UpsertCredentialSpec(ctx, c))
		return tx.DeleteTarget(ctx, "local-env")
	})
	_, err = s.GetTarget(ctx, "local-env")
	isErr(t, "get deleted", err, store.ErrNotFound)
	err = s.InTx(ctx, func(tx store.Tx) error { return tx.DeleteTarget(ctx, "local-env") })
	isErr(t, "delete deleted", err, store.ErrNotFound)
	tx(t, s, func(tx store.Tx) error { return tx.DeleteCredential(ctx, "c1") })
	tx(t, s, func(tx store.Tx) error { return tx.DeleteTarget(ctx, "sm-github") })
	tx(t, s, func(tx store.Tx) error { return tx.UpsertTarget(ctx, file) })
	ts, err = s.ListTargets(ctx)
	noErr(t, "list revived", err)
	equal(t, "revived", ts, []store.Target{file})
}

func testSetCredentialStatus(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("a"), credential("b"), credential("c"), credential("d"))
	tx(t, s, func(tx store.Tx) error { return tx.DeleteCredential(ctx, "d") })
	tx(t, s, func(tx store.Tx) error {
		noErr(t, "no ids", tx.SetCredentialStatus(ctx, nil, store.StatusDue))
		return tx.SetCredentialStatus(ctx, []string{"a", "c", "d", "missing"}, store.StatusRotating)
	})
	list, err := s.ListCredentials(ctx, store.CredentialFilter{})
	noErr(t, "list", err)
	got := map[string]store.Status{}
	for _, c := range list {
		got[c.ID] = c.State.Status
	}
	equal(t, "statuses", got, map[string]store.Status{"a": store.StatusRotating, "b": store.StatusNew, "c": store.StatusRotating})
	list, err = s.ListCredentials(ctx, store.CredentialFilter{ExcludeStatuses: []store.Status{store.StatusRotating, store.StatusNeedsAttention}})
	noErr(t, "list excluding", err)
	equal(t, "excluding rotating", credIDs(list), []string{"b"})

	// Idle leaves out credentials with an active run (a run waiting out its
	// grace period leaves the credential healthy but not idle).
	tx(t, s, func(tx store.Tx) error { return tx.InsertRun(ctx, run("idle-r1", "b", t0)) })
	list, err = s.ListCredentials(ctx, store.CredentialFilter{Idle: true})
	noErr(t, "list idle", err)
	equal(t, "idle", credIDs(list), []string{"a", "c"})
	tx(t, s, func(tx store.Tx) error {
		r, err := tx.GetRun(ctx, "idle-r1")
		if err != nil {
			return err
		}
		r.Active = false
		return tx.UpdateRun(ctx, r)
	})
	list, err = s.ListCredentials(ctx, store.CredentialFilter{Idle: true})
	noErr(t, "list idle after run ended", err)
	equal(t, "idle after run ended", credIDs(list), []string{"a", "b", "c"})
}

func testListCredentialsByDue(t *testing.T, s store.Store, ctx context.Context) {
	due := func(d time.Duration) func(*store.Credential) {
		return func(c *store.Credential) { c.State.NextRotationAt = t0.Add(d) }
	}
	seed(t, s,
		credential("a", due(time.Hour)),
		credential("b", due(-time.Hour)),
		credential("c"), // unscheduled
		credential("d", due(-time.Hour)),
		credential("e", due(-2*time.Hour), func(c *store.Credential) { c.State.Status = store.StatusNeedsAttention }),
		credential("f", due(-3*time.Hour)),
	)
	for name, tc := range map[string]struct {
		f    store.CredentialFilter
		want []string
	}{
		"due order":              {store.CredentialFilter{OrderByDue: true}, []string{"f", "e", "b", "d", "a", "c"}},
		"due before, due order":  {store.CredentialFilter{OrderByDue: true, DueBefore: t0}, []string{"f", "e", "b", "d"}},
		"the scheduler's query":  {store.CredentialFilter{OrderByDue: true, DueBefore: t0, Limit: 2, ExcludeStatuses: []store.Status{store.StatusNeedsAttention}}, []string{"f", "b"}},
		"due before, id order":   {store.CredentialFilter{DueBefore: t0}, []string{"b", "d", "e", "f"}},
		"exclude nothing listed": {store.CredentialFilter{ExcludeStatuses: []store.Status{store.StatusFailing}}, []string{"a", "b", "c", "d", "e", "f"}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := s.ListCredentials(ctx, tc.f)
			noErr(t, "list", err)
			equal(t, "ids", credIDs(got), tc.want)
		})
	}
}

func testInsertRunsIfIdle(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("c1"), credential("c2"), credential("c3"))
	tx(t, s, func(tx store.Tx) error { return tx.InsertRun(ctx, run("r0", "c1", t0)) })
	inactive := run("r4", "c3", t0)
	inactive.Active = false
	noDefaults := run("r5", "c3", time.Time{})
	noDefaults.UpdatedAt = time.Time{}
	batch := []store.Run{
		run("r1", "c1", t0), // c1 has r0
		run("r2", "c2", t0),
		run("r3", "c2", t0.Add(time.Second)), // r2 came first
		inactive,
		noDefaults,
	}
	var inserted []store.Run
	tx(t, s, func(tx store.Tx) error {
		var err error
		inserted, err = tx.InsertRunsIfIdle(ctx, batch)
		noErr(t, "insert runs", err)
		none, err := tx.InsertRunsIfIdle(ctx, nil)
		noErr(t, "insert no runs", err)
		equal(t, "inserted of none", len(none), 0)
		return nil
	})
	equal(t, "inserted", ids(inserted, func(r store.Run) string { return r.ID }), []string{"r2", "r4", "r5"})
	if len(inserted) == 3 {
		equal(t, "inserted r2", inserted[0], batch[1])
		if inserted[2].CreatedAt.IsZero() || !inserted[2].UpdatedAt.Equal(inserted[2].CreatedAt) {
			t.Errorf("defaults not applied to the returned run: %+v", inserted[2])
		}
		got, err := s.GetRun(ctx, "r5")
		noErr(t, "get r5", err)
		equal(t, "stored r5", got, inserted[2])
	}
	if batch[4].CreatedAt != (time.Time{}) {
		t.Error("InsertRunsIfIdle changed its argument")
	}
	for _, id := range []string{"r1", "r3"} {
		_, err := s.GetRun(ctx, id)
		isErr(t, "skipped run "+id, err, store.ErrNotFound)
	}
	err := s.InTx(ctx, func(tx store.Tx) error {
		r := run("r2", "c3", t0)
		r.Active = false
		_, err := tx.InsertRunsIfIdle(ctx, []store.Run{r})
		return err
	})
	isErr(t, "existing run id", err, store.ErrConflict)

	// Larger than one statement.
	var many []store.Credential
	var runs []store.Run
	for i := range 600 { // more than one statement holds
		id := fmt.Sprintf("m%04d", i)
		many = append(many, credential(id))
		runs = append(runs, run("run-"+id, id, t0))
	}
	seed(t, s, many...)
	tx(t, s, func(tx store.Tx) error {
		got, err := tx.InsertRunsIfIdle(ctx, runs)
		noErr(t, "insert many", err)
		equal(t, "inserted many", len(got), len(runs))
		// Runs of busy credentials are skipped, even when the active run
		// is the same run.
		got, err = tx.InsertRunsIfIdle(ctx, runs[:10])
		noErr(t, "reinsert active runs", err)
		equal(t, "reinserted", len(got), 0)
		return nil
	})
}

func testInsertRunsIfIdleConcurrent(t *testing.T, s store.Store, ctx context.Context) {
	var creds []store.Credential
	for i := range 20 {
		creds = append(creds, credential(fmt.Sprintf("c%02d", i)))
	}
	seed(t, s, creds...)
	const n = 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := map[string]int{}
	for w := range n {
		wg.Go(func() {
			var runs []store.Run
			for _, c := range creds {
				runs = append(runs, run(fmt.Sprintf("%s-w%d", c.ID, w), c.ID, t0))
			}
			err := s.InTx(ctx, func(tx store.Tx) error {
				got, err := tx.InsertRunsIfIdle(ctx, runs)
				if err != nil {
					return err
				}
				mu.Lock()
				defer mu.Unlock()
				for _, r := range got {
					won[r.CredentialID]++
				}
				return nil
			})
			if err != nil {
				t.Errorf("worker %d: %v", w, err)
			}
		})
	}
	wg.Wait()
	for _, c := range creds {
		if won[c.ID] != 1 {
			t.Errorf("credential %s: %d runs started, want 1", c.ID, won[c.ID])
		}
	}
	active, err := s.ListRuns(ctx, store.RunFilter{ActiveOnly: true})
	noErr(t, "list active", err)
	equal(t, "active runs", len(active), len(creds))
}

func testListRunsByIDs(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("c1"), credential("c2"), credential("c3"))
	tx(t, s, func(tx store.Tx) error {
		for i, c := range []string{"c1", "c2", "c3"} {
			noErr(t, "insert", tx.InsertRun(ctx, run("r"+c, c, t0.Add(time.Duration(i)*time.Second))))
		}
		return nil
	})
	for name, tc := range map[string]struct {
		f    store.RunFilter
		want []string
	}{
		"ids":            {store.RunFilter{IDs: []string{"rc1", "rc3", "nope"}}, []string{"rc3", "rc1"}},
		"credential ids": {store.RunFilter{CredentialIDs: []string{"c2", "c3"}}, []string{"rc3", "rc2"}},
		"both":           {store.RunFilter{IDs: []string{"rc1", "rc2"}, CredentialIDs: []string{"c2", "c3"}}, []string{"rc2"}},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := s.ListRuns(ctx, tc.f)
			noErr(t, "list", err)
			equal(t, "run ids", ids(got, func(r store.Run) string { return r.ID }), tc.want)
		})
	}
}

func testAdvanceRun(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("c1"))
	r := run("r1", "c1", t0)
	tx(t, s, func(tx store.Tx) error { return tx.InsertRun(ctx, r) })
	advance := func(r store.Run, from string, fromUpdated time.Time, steps []store.Step, evs ...store.AuditEvent) error {
		return s.InTx(ctx, func(tx store.Tx) error {
			return tx.AdvanceRun(ctx, store.RunAdvance{Run: r, FromState: from, FromUpdatedAt: fromUpdated, Steps: steps, Events: evs})
		})
	}
	step := func(seq int, name string) store.Step {
		return store.Step{RunID: "r1", Seq: seq, Name: name, State: "ok", Attempt: 1, StartedAt: t0, FinishedAt: t0.Add(time.Second),
			Evidence: map[string]string{"version": "v1"}}
	}
	event := func(action string) store.AuditEvent {
		return store.AuditEvent{OccurredAt: t0, Actor: "scheduler", Action: action, CredentialID: "c1", RunID: "r1", Data: json.RawMessage(`{"step":"mint"}`)}
	}

	next := r
	next.State, next.UpdatedAt, next.StartedAt = "minted", t0.Add(time.Second), t0.Add(time.Second)
	steps := []store.Step{step(0, "mint"), step(1, "activate")}
	noErr(t, "advance", advance(next, "planned", t0, steps, event("run.mint"), event("run.activate")))
	got, err := s.GetRun(ctx, "r1")
	noErr(t, "get advanced", err)
	equal(t, "advanced run", got, next)
	gotSteps, err := s.ListSteps(ctx, "r1")
	noErr(t, "list steps", err)
	equal(t, "steps of the transition", gotSteps, steps)
	equal(t, "events of the transition", actions(collect(t, s, store.AuditFilter{RunID: "r1"})), []string{"run.mint", "run.activate"})

	// From a state or an update time the run is no longer in: nothing is
	// written, neither the run nor its steps and events.
	stale := next
	stale.State, stale.UpdatedAt = "succeeded", t0.Add(2*time.Second)
	isErr(t, "advance from a past state", advance(stale, "planned", t0, []store.Step{step(2, "verify")}, event("run.verify")), store.ErrConflict)
	isErr(t, "advance from a past update time", advance(stale, "minted", t0, []store.Step{step(2, "verify")}, event("run.verify")), store.ErrConflict)
	got, err = s.GetRun(ctx, "r1")
	noErr(t, "get after conflicts", err)
	equal(t, "run after conflicts", got, next)
	gotSteps, err = s.ListSteps(ctx, "r1")
	noErr(t, "list steps after conflicts", err)
	equal(t, "steps after conflicts", len(gotSteps), 2)
	equal(t, "events after conflicts", len(collect(t, s, store.AuditFilter{RunID: "r1"})), 2)

	// A conflict leaves the transaction usable.
	tx(t, s, func(tx store.Tx) error {
		err := tx.AdvanceRun(ctx, store.RunAdvance{Run: stale, FromState: "planned", FromUpdatedAt: t0})
		isErr(t, "conflict in a transaction", err, store.ErrConflict)
		return tx.AdvanceRun(ctx, store.RunAdvance{Run: stale, FromState: "minted", FromUpdatedAt: t0.Add(time.Second)})
	})
	got, err = s.GetRun(ctx, "r1")
	noErr(t, "get finished", err)
	equal(t, "finished run", got.State, "succeeded")

	// A step that exists fails the transition.
	again := stale
	again.UpdatedAt = t0.Add(3 * time.Second)
	isErr(t, "advance with an existing step", advance(again, "succeeded", stale.UpdatedAt, []store.Step{step(1, "activate")}), store.ErrConflict)

	isErr(t, "advance missing run", advance(run("nope", "c1", t0), "planned", t0, nil), store.ErrNotFound)
}

// testAdvanceRunConcurrent: of several transactions advancing one run from
// the same state at once, exactly one succeeds.
func testAdvanceRunConcurrent(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("c1"))
	r := run("r1", "c1", t0)
	tx(t, s, func(tx store.Tx) error { return tx.InsertRun(ctx, r) })
	exactlyOneAdvances(t, 8, func(i int) error {
		next := r
		next.State, next.UpdatedAt = "minted", t0.Add(time.Duration(i+1)*time.Second)
		a := store.RunAdvance{Run: next, FromState: "planned", FromUpdatedAt: t0,
			Steps:  []store.Step{{RunID: "r1", Seq: 0, Name: fmt.Sprintf("mint-%d", i), State: "ok"}},
			Events: []store.AuditEvent{{Action: fmt.Sprintf("run.mint-%d", i), RunID: "r1"}}}
		return s.InTx(ctx, func(tx store.Tx) error { return tx.AdvanceRun(ctx, a) })
	})
	steps, err := s.ListSteps(ctx, "r1")
	noErr(t, "list steps", err)
	equal(t, "steps written", len(steps), 1)
	equal(t, "events written", len(collect(t, s, store.AuditFilter{RunID: "r1"})), 1)
}

// exactlyOneAdvances runs advance(i) for n transactions at once and checks
// that exactly one succeeded and every other failed with ErrConflict.
func exactlyOneAdvances(t *testing.T, n int, advance func(i int) error) {
	t.Helper()
	start := make(chan struct{})
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = advance(i)
		})
	}
	close(start)
	wg.Wait()
	won := 0
	for i, err := range errs {
		if err == nil {
			won++
			continue
		}
		isErr(t, fmt.Sprintf("advance %d", i), err, store.ErrConflict)
	}
	equal(t, "transactions that advanced the run", won, 1)
}

func testStepsMultiRow(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("c1"))
	var steps []store.Step
	for i := range 1203 { // more than one statement's worth
		steps = append(steps, store.Step{RunID: "r1", Seq: i, Name: fmt.Sprintf("step-%d", i), State: "ok", Attempt: 1,
			StartedAt: t0.Add(time.Duration(i) * time.Millisecond), FinishedAt: t0.Add(time.Duration(i+1) * time.Millisecond),
			Evidence: map[string]string{"i": fmt.Sprint(i)}})
	}
	steps[7].Evidence, steps[8].FinishedAt, steps[9].Error, steps[9].State = nil, time.Time{}, "boom", "failed"
	tx(t, s, func(tx store.Tx) error {
		noErr(t, "insert run", tx.InsertRun(ctx, run("r1", "c1", t0)))
		noErr(t, "insert no steps", tx.InsertStep(ctx))
		return tx.InsertStep(ctx, steps...)
	})
	got, err := s.ListSteps(ctx, "r1")
	noErr(t, "list", err)
	equal(t, "steps", got, steps)

	err = s.InTx(ctx, func(tx store.Tx) error {
		return tx.InsertStep(ctx, store.Step{RunID: "r1", Seq: 5000, Name: "new", State: "ok"}, steps[3])
	})
	isErr(t, "a duplicate among several", err, store.ErrConflict)
	got, err = s.ListSteps(ctx, "r1")
	noErr(t, "list after conflict", err)
	equal(t, "steps after conflict", len(got), len(steps))
	err = s.InTx(ctx, func(tx store.Tx) error {
		return tx.InsertStep(ctx, store.Step{RunID: "nope", Seq: 1, Name: "a", State: "ok"}, store.Step{RunID: "nope", Seq: 2, Name: "b", State: "ok"})
	})
	isErr(t, "steps of a missing run", err, store.ErrNotFound)
}

// testPipelinedTx: InPipelinedTx commits what its writes wrote, like InTx;
// a failing write or a run that moved fails the whole transaction, even
// when the failure is only known after fn returned; reads inside see the
// writes before them.
func testPipelinedTx(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("c1"))
	tx(t, s, func(tx store.Tx) error {
		if err := tx.InsertVersion(ctx, version("v1", "c1", store.StageCurrent, t0)); err != nil {
			return err
		}
		st := store.CredentialState{Status: store.StatusHealthy, CurrentVersionID: "v1"}
		if err := tx.UpdateCredentialState(ctx, "c1", st); err != nil {
			return err
		}
		return tx.InsertRun(ctx, run("r1", "c1", t0))
	})
	r, err := s.GetRun(ctx, "r1")
	noErr(t, "get run", err)

	// The engine's minted commit: a version, the credential, the run.
	minted := r
	minted.State, minted.UpdatedAt, minted.NewVersionID = "minted", t0.Add(time.Second), "v2"
	mintedState := store.CredentialState{Status: store.StatusRotating, CurrentVersionID: "v1", PendingVersionID: "v2"}
	err = s.InPipelinedTx(ctx, func(tx store.Tx) error {
		if err := tx.InsertVersion(ctx, version("v2", "c1", store.StagePending, t0.Add(time.Second))); err != nil {
			return err
		}
		if err := tx.UpdateCredentialState(ctx, "c1", mintedState); err != nil {
			return err
		}
		return tx.AdvanceRun(ctx, store.RunAdvance{Run: minted, FromState: "planned", FromUpdatedAt: t0,
			Steps:  []store.Step{{RunID: "r1", Seq: 0, Name: "mint", State: "ok", Attempt: 1}},
			Events: []store.AuditEvent{{Action: "run.mint", RunID: "r1", CredentialID: "c1"}}})
	})
	noErr(t, "pipelined commit", err)
	got, err := s.GetRun(ctx, "r1")
	noErr(t, "get minted run", err)
	equal(t, "minted run", got, minted)
	c, err := s.GetCredential(ctx, "c1")
	noErr(t, "get credential", err)
	equal(t, "credential's pending version", c.State.PendingVersionID, "v2")
	_, err = s.GetVersion(ctx, "v2")
	noErr(t, "pending version written", err)

	// A run that moved on: the conflict is the transaction's error and the
	// writes queued before the run's are rolled back.
	stale := minted
	stale.State, stale.UpdatedAt = "cut_over", t0.Add(2*time.Second)
	err = s.InPipelinedTx(ctx, func(tx store.Tx) error {
		if err := tx.InsertVersion(ctx, version("v3", "c1", store.StagePending, t0)); err != nil {
			return err
		}
		return tx.AdvanceRun(ctx, store.RunAdvance{Run: stale, FromState: "planned", FromUpdatedAt: t0,
			Events: []store.AuditEvent{{Action: "run.stale", RunID: "r1"}}})
	})
	isErr(t, "pipelined advance from a past state", err, store.ErrConflict)
	if err != nil && !strings.Contains(err.Error(), "it is minted") {
		t.Errorf("conflict error %q does not say the state the run is in", err)
	}
	_, err = s.GetVersion(ctx, "v3")
	isErr(t, "version of a failed pipelined transaction", err, store.ErrNotFound)
	equal(t, "events of a failed pipelined transaction", actions(collect(t, s, store.AuditFilter{RunID: "r1"})), []string{"run.mint"})

	// A write that fails (an existing version id) fails the transaction,
	// and the run's advance queued after it is not committed.
	err = s.InPipelinedTx(ctx, func(tx store.Tx) error {
		if err := tx.InsertVersion(ctx, version("v2", "c1", store.StagePending, t0)); err != nil {
			return err
		}
		return tx.AdvanceRun(ctx, store.RunAdvance{Run: stale, FromState: "minted", FromUpdatedAt: minted.UpdatedAt})
	})
	isErr(t, "pipelined insert of an existing version", err, store.ErrConflict)
	got, err = s.GetRun(ctx, "r1")
	noErr(t, "get run after a failed write", err)
	equal(t, "run after a failed write", got.State, "minted")

	// An update of a row that does not exist fails the transaction.
	err = s.InPipelinedTx(ctx, func(tx store.Tx) error {
		return tx.UpdateVersion(ctx, version("nope", "c1", store.StagePrevious, t0))
	})
	isErr(t, "pipelined update of a missing version", err, store.ErrNotFound)
	err = s.InPipelinedTx(ctx, func(tx store.Tx) error {
		return tx.AdvanceRun(ctx, store.RunAdvance{Run: run("nope", "c1", t0), FromState: "planned", FromUpdatedAt: t0})
	})
	isErr(t, "pipelined advance of a missing run", err, store.ErrNotFound)

	// Reads see the writes queued before them; fn's error rolls back.
	boom := errors.New("boom")
	err = s.InPipelinedTx(ctx, func(tx store.Tx) error {
		st := mintedState
		st.Status = store.StatusFailing
		if err := tx.UpdateCredentialState(ctx, "c1", st); err != nil {
			return err
		}
		c, err := tx.GetCredential(ctx, "c1")
		if err != nil {
			return err
		}
		equal(t, "read after a queued write", c.State.Status, store.StatusFailing)
		return boom
	})
	isErr(t, "fn's error", err, boom)
	c, err = s.GetCredential(ctx, "c1")
	noErr(t, "get credential after rollback", err)
	equal(t, "status after rollback", c.State.Status, store.StatusRotating)

	// A deferred constraint checked at commit (the credential points at a
	// version that does not exist) fails the transaction.
	err = s.InPipelinedTx(ctx, func(tx store.Tx) error {
		st := mintedState
		st.CurrentVersionID = "ghost"
		return tx.UpdateCredentialState(ctx, "c1", st)
	})
	isErr(t, "pipelined write breaking a deferred foreign key", err, store.ErrConflict)
	c, err = s.GetCredential(ctx, "c1")
	noErr(t, "get credential after a failed commit", err)
	equal(t, "current version after a failed commit", c.State.CurrentVersionID, "v1")

	// An empty transaction commits nothing and fails nothing.
	noErr(t, "empty pipelined transaction", s.InPipelinedTx(ctx, func(store.Tx) error { return nil }))
}

// testPipelinedTxConcurrent: of several pipelined transactions advancing
// one run from the same state at once, exactly one commits its writes.
func testPipelinedTxConcurrent(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("c1"))
	r := run("r1", "c1", t0)
	tx(t, s, func(tx store.Tx) error { return tx.InsertRun(ctx, r) })
	exactlyOneAdvances(t, 8, func(i int) error {
		next := r
		vid := fmt.Sprintf("v%d", i)
		next.State, next.UpdatedAt, next.NewVersionID = "minted", t0.Add(time.Duration(i+1)*time.Second), vid
		return s.InPipelinedTx(ctx, func(tx store.Tx) error {
			if err := tx.InsertVersion(ctx, version(vid, "c1", store.StagePending, t0)); err != nil {
				return err
			}
			return tx.AdvanceRun(ctx, store.RunAdvance{Run: next, FromState: "planned", FromUpdatedAt: t0,
				Steps: []store.Step{{RunID: "r1", Seq: 0, Name: "mint-" + vid, State: "ok"}}})
		})
	})
	vs, err := s.ListVersions(ctx, "c1")
	noErr(t, "list versions", err)
	equal(t, "versions written", len(vs), 1)
	steps, err := s.ListSteps(ctx, "r1")
	noErr(t, "list steps", err)
	equal(t, "steps written", len(steps), 1)
}

// testGetRunWork: a run with its credential and the credential's pending
// and previous versions (not current, retired or discarded ones).
func testGetRunWork(t *testing.T, s store.Store, ctx context.Context) {
	seed(t, s, credential("c1"), credential("c2"))
	tx(t, s, func(tx store.Tx) error {
		for _, v := range []store.Version{
			version("v1", "c1", store.StageRetired, t0),
			version("v2", "c1", store.StagePrevious, t0.Add(time.Second)),
			version("v3", "c1", store.StagePrevious, t0.Add(2*time.Second)),
			version("v4", "c1", store.StageCurrent, t0.Add(3*time.Second)),
			version("v5", "c1", store.StagePending, t0.Add(4*time.Second)),
			version("w1", "c2", store.StagePending, t0),
		} {
			if err := tx.InsertVersion(ctx, v); err != nil {
				return err
			}
		}
		st := store.CredentialState{Status: store.StatusRotating, CurrentVersionID: "v4", PendingVersionID: "v5"}
		if err := tx.UpdateCredentialState(ctx, "c1", st); err != nil {
			return err
		}
		if err := tx.InsertRun(ctx, run("r1", "c1", t0)); err != nil {
			return err
		}
		return tx.InsertRun(ctx, run("r2", "c2", t0))
	})
	w, err := s.GetRunWork(ctx, "r1")
	noErr(t, "get run work", err)
	want, err := s.GetRun(ctx, "r1")
	noErr(t, "get run", err)
	equal(t, "run", w.Run, want)
	wantCred, err := s.GetCredential(ctx, "c1")
	noErr(t, "get credential", err)
	if w.Credential == nil {
		t.Fatal("credential missing")
	}
	equal(t, "credential", *w.Credential, wantCred)
	equal(t, "pending versions", ids(w.Pending, func(v store.Version) string { return v.ID }), []string{"v5"})
	equal(t, "previous versions, newest first", ids(w.Previous, func(v store.Version) string { return v.ID }), []string{"v3", "v2"})
	v2, err := s.GetVersion(ctx, "v2")
	noErr(t, "get version", err)
	equal(t, "a previous version as stored", w.Previous[1], v2)

	tx(t, s, func(tx store.Tx) error { return tx.DeleteCredential(ctx, "c2") })
	w, err = s.GetRunWork(ctx, "r2")
	noErr(t, "get run work of a removed credential", err)
	equal(t, "run of a removed credential", w.Run.ID, "r2")
	if w.Credential != nil {
		t.Errorf("removed credential returned: %+v", w.Credential)
	}
	_, err = s.GetRunWork(ctx, "nope")
	isErr(t, "get run work of a missing run", err, store.ErrNotFound)
}
