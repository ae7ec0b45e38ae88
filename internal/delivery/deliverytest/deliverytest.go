// Package deliverytest is the conformance suite every delivery.Source
// passes (CONVENTIONS.md: one suite for all implementations of a
// contract), with a fixture that seeds a store with credentials and rotates
// them through the real engine and the generated provider.
//
//	deliverytest.ForEachDialect(t, func(t *testing.T, dialect string) {
//		deliverytest.Exercise(t, func(t *testing.T) deliverytest.Bundle {
//			f := deliverytest.NewFixture(t, deliverytest.OpenStore(t, dialect))
//			src := ... // a Source over f.Store
//			return deliverytest.Bundle{Source: src, Fixture: f, Reader: "local", Via: "local"}
//		})
//	})
package deliverytest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/store"
)

// Bundle is what a setup gives the suite: a Source reading the fixture's
// store, which may read CredA, CredB and CredNoValue.
type Bundle struct {
	Source  delivery.Source
	Fixture *Fixture
	// Reader and Via are what the source records in its value.read events
	// (ReadEvent.Reader and ReadEvent.Via).
	Reader string
	Via    string
	// Forbidden is a credential that exists but the source may not read
	// (ExerciseForbidden only): Read and Watch fail with ErrForbidden,
	// unrecorded as a read.
	Forbidden string
}

// waitTimeout bounds every wait the suite expects to end.
const waitTimeout = 30 * time.Second

// Exercise runs the suite. setup is called once per subtest and returns a
// fresh fixture (NewFixture on a store of its own).
func Exercise(t *testing.T, setup func(t *testing.T) Bundle) {
	t.Run("ReadCurrent", func(t *testing.T) {
		b := setup(t)
		f := b.Fixture
		cur, err := b.Source.Read(t.Context(), delivery.ReadRequest{CredentialID: CredA, Purpose: "test"})
		if err != nil {
			t.Fatalf("Read(%s): %v", CredA, err)
		}
		c, err := f.Store.GetCredential(t.Context(), CredA)
		if err != nil {
			t.Fatal(err)
		}
		if cur.CredentialID != CredA || cur.VersionID != c.Current.ID || cur.Fingerprint != c.Current.Fingerprint {
			t.Errorf("Read = {credential %q version %q fingerprint %q}; want {%q %q %q}",
				cur.CredentialID, cur.VersionID, cur.Fingerprint, CredA, c.Current.ID, c.Current.Fingerprint)
		}
		if !cur.ExpiresAt.Equal(c.Current.ExpiresAt) || !cur.NextCutoverAt.Equal(c.State.NextRotationAt) {
			t.Errorf("Read times: expires %v next cutover %v; want %v and %v", cur.ExpiresAt, cur.NextCutoverAt, c.Current.ExpiresAt, c.State.NextRotationAt)
		}
		if c.State.NextRotationAt.IsZero() {
			t.Errorf("the fixture's credential has no next rotation time: the check above proves nothing")
		}
		if got, want := cur.Value.RevealString(), f.Value(t, CredA); got != want || !strings.HasPrefix(got, ValuePrefix) {
			t.Errorf("Read value has length %d and does not match the stored one (length %d)", len(got), len(want))
		}
		if s := fmt.Sprintf("%v %+v %s", cur, cur, cur.Value); strings.Contains(s, cur.Value.RevealString()) {
			t.Errorf("printing a Current reveals its value")
		}
		other, err := b.Source.Read(t.Context(), delivery.ReadRequest{CredentialID: CredB})
		if err != nil || other.Value.RevealString() != f.Value(t, CredB) || other.Value.Equal(cur.Value) {
			t.Errorf("Read(%s) = version %q, %v; want its own value", CredB, other.VersionID, err)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		b := setup(t)
		_, err := b.Source.Read(t.Context(), delivery.ReadRequest{CredentialID: "dt-no-such"})
		if !errors.Is(err, delivery.ErrNotFound) || !strings.Contains(err.Error(), "dt-no-such") {
			t.Errorf("Read of an unknown id: %v; want ErrNotFound naming it", err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		_, err = b.Source.Watch(ctx, delivery.WatchRequest{CredentialID: "dt-no-such", AfterVersionID: "x"})
		if !errors.Is(err, delivery.ErrNotFound) {
			t.Errorf("Watch of an unknown id: %v; want ErrNotFound at once", err)
		}
	})

	t.Run("NoValueYet", func(t *testing.T) {
		b := setup(t)
		_, err := b.Source.Read(t.Context(), delivery.ReadRequest{CredentialID: CredNoValue})
		if !errors.Is(err, delivery.ErrNoValue) || errors.Is(err, delivery.ErrNotFound) || !strings.Contains(err.Error(), CredNoValue) {
			t.Errorf("Read of a never-rotated credential: %v; want ErrNoValue naming it", err)
		}
		// A watch waits for the first value.
		done := make(chan result, 1)
		go func() {
			cur, err := b.Source.Watch(t.Context(), delivery.WatchRequest{CredentialID: CredNoValue})
			done <- result{cur, err}
		}()
		select {
		case r := <-done:
			t.Fatalf("Watch of a credential without a value returned before it had one: %v", r.err)
		case <-time.After(300 * time.Millisecond):
		}
		v := b.Fixture.Rotate(t, CredNoValue)
		r := waitResult(t, done)
		if r.err != nil || r.cur.VersionID != v || r.cur.Value.RevealString() != b.Fixture.Value(t, CredNoValue) {
			t.Errorf("Watch after the first rotation = version %q, %v; want %q with its value", r.cur.VersionID, r.err, v)
		}
	})

	t.Run("WatchAlreadyChanged", func(t *testing.T) {
		b := setup(t)
		want := b.Fixture.CurrentVersion(t, CredA)
		for _, after := range []string{"", "01OLDVERSION"} {
			ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
			cur, err := b.Source.Watch(ctx, delivery.WatchRequest{CredentialID: CredA, AfterVersionID: after})
			cancel()
			if err != nil || cur.VersionID != want || cur.Value.RevealString() != b.Fixture.Value(t, CredA) {
				t.Errorf("Watch(after %q) = %q, %v; want %q at once", after, cur.VersionID, err, want)
			}
		}
	})

	t.Run("WatchReturnsOnRotation", func(t *testing.T) {
		b := setup(t)
		old := b.Fixture.CurrentVersion(t, CredA)
		done := make(chan result, 1)
		go func() {
			cur, err := b.Source.Watch(t.Context(), delivery.WatchRequest{CredentialID: CredA, AfterVersionID: old, Purpose: "test"})
			done <- result{cur, err}
		}()
		select {
		case r := <-done:
			t.Fatalf("Watch returned before any rotation: version %q, %v", r.cur.VersionID, r.err)
		case <-time.After(300 * time.Millisecond):
		}
		// Another credential's rotation does not end the watch.
		b.Fixture.Rotate(t, CredB)
		select {
		case r := <-done:
			t.Fatalf("Watch of %s returned on a rotation of %s: version %q, %v", CredA, CredB, r.cur.VersionID, r.err)
		case <-time.After(1500 * time.Millisecond):
		}
		v := b.Fixture.Rotate(t, CredA)
		start := time.Now()
		r := waitResult(t, done)
		if r.err != nil || r.cur.VersionID != v || r.cur.Value.RevealString() != b.Fixture.Value(t, CredA) {
			t.Errorf("Watch after a rotation = version %q, %v; want %q with its value", r.cur.VersionID, r.err, v)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("Watch returned %v after the rotation", d)
		}
		expectRead(t, b, CredA, v)
	})

	t.Run("WatchHonoursContext", func(t *testing.T) {
		b := setup(t)
		cur := b.Fixture.CurrentVersion(t, CredA)
		ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := b.Source.Watch(ctx, delivery.WatchRequest{CredentialID: CredA, AfterVersionID: cur})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Watch with an expiring context: %v; want context.DeadlineExceeded", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("Watch returned %v after a 200ms deadline", d)
		}
		ctx, cancel = context.WithCancel(t.Context())
		go func() { time.Sleep(100 * time.Millisecond); cancel() }()
		if _, err := b.Source.Watch(ctx, delivery.WatchRequest{CredentialID: CredA, AfterVersionID: cur}); !errors.Is(err, context.Canceled) {
			t.Errorf("Watch with a cancelled context: %v; want context.Canceled", err)
		}
	})

	t.Run("ReadIsAudited", func(t *testing.T) {
		b := setup(t)
		before := readEvents(t, b.Fixture.Store, CredA)
		cur, err := b.Source.Read(t.Context(), delivery.ReadRequest{CredentialID: CredA, Purpose: "headers"})
		if err != nil {
			t.Fatal(err)
		}
		after := readEvents(t, b.Fixture.Store, CredA)
		if len(after) != len(before)+1 {
			t.Fatalf("%d value.read events after one read, %d before", len(after), len(before))
		}
		ev, data := after[len(after)-1].ev, after[len(after)-1].data
		if ev.CredentialID != CredA || data.Version != cur.VersionID || data.Fingerprint != cur.Fingerprint ||
			data.Reader != b.Reader || data.Via != b.Via || data.Purpose != "headers" {
			t.Errorf("value.read event: credential %q, data %+v; want %s, version %s, fingerprint %s, reader %q, via %q, purpose headers",
				ev.CredentialID, data, CredA, cur.VersionID, cur.Fingerprint, b.Reader, b.Via)
		}
		if ev.Actor != b.Reader {
			t.Errorf("value.read actor %q; want %q", ev.Actor, b.Reader)
		}
		// The canary: the value is in no audit event of any credential.
		value := cur.Value.RevealString()
		err = b.Fixture.Store.ScanAuditEvents(t.Context(), store.AuditFilter{}, func(e store.AuditEvent) error {
			raw, _ := json.Marshal(e)
			if strings.Contains(string(raw)+e.Actor+string(e.Data), value) || strings.Contains(string(raw), ValuePrefix) {
				t.Errorf("audit event %d (%s) holds a credential value", e.ID, e.Action)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		// Failed reads are not reads.
		_, _ = b.Source.Read(t.Context(), delivery.ReadRequest{CredentialID: CredNoValue})
		if n := len(readEvents(t, b.Fixture.Store, CredNoValue)); n != 0 {
			t.Errorf("%d value.read events for a credential without a value", n)
		}
	})

	// A read committed after a cutover returns the new version, at once: a
	// source may keep values, never serve one that is no longer current.
	t.Run("ReadAfterRotation", func(t *testing.T) {
		b := setup(t)
		for i := range 3 {
			if _, err := b.Source.Read(t.Context(), delivery.ReadRequest{CredentialID: CredA}); err != nil {
				t.Fatal(err)
			}
			v := b.Fixture.Rotate(t, CredA)
			cur, err := b.Source.Read(t.Context(), delivery.ReadRequest{CredentialID: CredA})
			if err != nil {
				t.Fatal(err)
			}
			if cur.VersionID != v || cur.Value.RevealString() != b.Fixture.Value(t, CredA) {
				t.Fatalf("rotation %d: read version %s right after the cutover to %s (or another value)", i+1, cur.VersionID, v)
			}
			evs := readEvents(t, b.Fixture.Store, CredA)
			if last := evs[len(evs)-1].data; last.Version != v {
				t.Errorf("rotation %d: the last value.read event names version %s; want %s", i+1, last.Version, v)
			}
		}
	})

	t.Run("ConcurrentReads", func(t *testing.T) {
		b := setup(t)
		const workers, reads = 8, 10
		before := len(readEvents(t, b.Fixture.Store, CredA))
		want := b.Fixture.CurrentVersion(t, CredA)
		value := b.Fixture.Value(t, CredA)
		var wg sync.WaitGroup
		errs := make(chan error, workers*reads)
		for range workers {
			wg.Go(func() {
				for range reads {
					cur, err := b.Source.Read(t.Context(), delivery.ReadRequest{CredentialID: CredA})
					switch {
					case err != nil:
						errs <- err
					case cur.VersionID != want || cur.Value.RevealString() != value:
						errs <- fmt.Errorf("read version %s, want %s (or another value)", cur.VersionID, want)
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if got := len(readEvents(t, b.Fixture.Store, CredA)) - before; got != workers*reads {
			t.Errorf("%d value.read events for %d reads", got, workers*reads)
		}
	})
}

// ExerciseForbidden checks a source that authorises its reader: reading or
// watching Bundle.Forbidden fails with ErrForbidden, and is not recorded as
// a read.
func ExerciseForbidden(t *testing.T, setup func(t *testing.T) Bundle) {
	t.Run("Forbidden", func(t *testing.T) {
		b := setup(t)
		if b.Forbidden == "" {
			t.Fatal("ExerciseForbidden needs a Bundle with Forbidden set")
		}
		_, err := b.Source.Read(t.Context(), delivery.ReadRequest{CredentialID: b.Forbidden})
		if !errors.Is(err, delivery.ErrForbidden) || !strings.Contains(err.Error(), b.Forbidden) {
			t.Errorf("Read of a forbidden credential: %v; want ErrForbidden naming it", err)
		}
		ctx, cancel := context.WithTimeout(t.Context(), waitTimeout)
		defer cancel()
		if _, err := b.Source.Watch(ctx, delivery.WatchRequest{CredentialID: b.Forbidden, AfterVersionID: "x"}); !errors.Is(err, delivery.ErrForbidden) {
			t.Errorf("Watch of a forbidden credential: %v; want ErrForbidden at once", err)
		}
		if n := len(readEvents(t, b.Fixture.Store, b.Forbidden)); n != 0 {
			t.Errorf("%d value.read events for a refused read", n)
		}
	})

}

type result struct {
	cur delivery.Current
	err error
}

func waitResult(t *testing.T, done <-chan result) result {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(waitTimeout):
		t.Fatalf("Watch did not return within %v", waitTimeout)
		return result{}
	}
}

type readEvent struct {
	ev   store.AuditEvent
	data delivery.ReadEvent
}

// readEvents returns the value.read events of a credential, oldest first.
func readEvents(t *testing.T, st store.Store, credID string) []readEvent {
	t.Helper()
	var out []readEvent
	err := st.ScanAuditEvents(t.Context(), store.AuditFilter{CredentialID: credID}, func(e store.AuditEvent) error {
		if e.Action != delivery.ActionValueRead {
			return nil
		}
		var d delivery.ReadEvent
		if err := json.Unmarshal(e.Data, &d); err != nil {
			return fmt.Errorf("event %d: %w", e.ID, err)
		}
		out = append(out, readEvent{e, d})
		return nil
	})
	if err != nil {
		t.Fatalf("scanning audit events: %v", err)
	}
	return out
}

// expectRead checks that the last value.read event of credID is of version.
func expectRead(t *testing.T, b Bundle, credID, version string) {
	t.Helper()
	evs := readEvents(t, b.Fixture.Store, credID)
	if len(evs) == 0 || evs[len(evs)-1].data.Version != version || evs[len(evs)-1].data.Reader != b.Reader {
		t.Errorf("the last value.read event of %s is not of version %s by %s: %+v", credID, version, b.Reader, evs)
	}
}
