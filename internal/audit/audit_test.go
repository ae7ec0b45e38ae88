package audit_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/audit"
	"github.com/rotatorhq/rotator/internal/store"
)

func TestCanonicalJSON(t *testing.T) {
	t.Parallel()
	tests := map[string]struct{ in, want string }{
		"sorted keys":        {`{"b":1,"a":2}`, `{"a":2,"b":1}`},
		"space dropped":      {"{ \"a\" : [ 1 , 2 ] ,\n \"b\": null }", `{"a":[1,2],"b":null}`},
		"nested sorted":      {`{"z":{"y":1,"x":{"b":true,"a":false}}}`, `{"z":{"x":{"a":false,"b":true},"y":1}}`},
		"numbers as written": {`{"a":1.50,"b":1e2,"c":-0}`, `{"a":1.50,"b":1e2,"c":-0}`},
		"no HTML escaping":   {`{"a":"<b>&"}`, `{"a":"<b>&"}`},
		"unicode escapes":    {`{"a":"\u00e9\u2028"}`, `{"a":"é\u2028"}`},
		"last duplicate":     {`{"a":1,"a":2}`, `{"a":2}`},
		"scalar":             {` "x" `, `"x"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := audit.CanonicalJSON([]byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tc.want {
				t.Errorf("CanonicalJSON(%s) = %s, want %s", tc.in, got, tc.want)
			}
		})
	}
	for _, bad := range []string{`{"a":}`, `{} {}`, `{"a":1`, ``} {
		if _, err := audit.CanonicalJSON([]byte(bad)); err == nil {
			t.Errorf("CanonicalJSON(%q) accepted invalid JSON", bad)
		}
	}
}

func TestCanonical(t *testing.T) {
	t.Parallel()
	ev := store.AuditEvent{
		ID: 42, OccurredAt: time.Date(2026, 3, 1, 12, 0, 0, 123456789, time.FixedZone("CET", 3600)),
		Actor: "alice", Action: "run.cut_over", CredentialID: "github-mcp-token", RunID: "01J0",
		Data: json.RawMessage(`{"fingerprint": "ab12", "attempt": 1}`),
		// Not covered by the hash:
		Seq: 9, PrevHash: "x", Hash: "y", SealedAt: time.Now(),
	}
	got, err := audit.Canonical(ev)
	if err != nil {
		t.Fatal(err)
	}
	want := "rotator-audit-v1\n" +
		"id=2:42\n" +
		"occurred_at=27:2026-03-01T11:00:00.123456Z\n" +
		"actor=5:alice\n" +
		"action=12:run.cut_over\n" +
		"credential_id=16:github-mcp-token\n" +
		"run_id=4:01J0\n" +
		`data=34:{"attempt":1,"fingerprint":"ab12"}` + "\n"
	if string(got) != want {
		t.Fatalf("Canonical =\n%s\nwant\n%s", got, want)
	}
	// Pinned: changing the encoding breaks every existing chain.
	h, err := audit.Hash(audit.Genesis, ev)
	if err != nil {
		t.Fatal(err)
	}
	const pinned = "e214d75458c355f923faefb5959931e9b05f2e61d27593196fc3addad6832375"
	if h != pinned {
		t.Errorf("Hash = %s (update the pin only together with CanonicalVersion)", h)
	}

	// Length prefixes keep fields apart whatever they contain.
	a := ev
	a.Actor, a.Action = "alice\naction=1:x", "y"
	b := ev
	b.Actor, b.Action = "alice", "x\naction=1:y"
	ca, _ := audit.Canonical(a)
	cb, _ := audit.Canonical(b)
	if string(ca) == string(cb) {
		t.Error("two different events have the same canonical form")
	}
	// Data spacing and key order do not matter; content does.
	c := ev
	c.Data = json.RawMessage(`{"attempt":1,"fingerprint":"ab12"}`)
	if hc, _ := audit.Hash(audit.Genesis, c); hc != h {
		t.Error("re-spaced data changed the hash")
	}
	c.Data = json.RawMessage(`{"attempt":2,"fingerprint":"ab12"}`)
	if hc, _ := audit.Hash(audit.Genesis, c); hc == h {
		t.Error("changed data kept the hash")
	}
	if hp, _ := audit.Hash(strings.Repeat("1", 64), ev); hp == h {
		t.Error("prev_hash is not covered by the hash")
	}
	empty := ev
	empty.Data = nil
	if _, err := audit.Canonical(empty); err != nil {
		t.Errorf("event without data: %v", err)
	}
}

func TestSealAndVerify(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		rep := verify(t, b.st, audit.VerifyOptions{})
		if !rep.OK || rep.Checked != 0 || rep.HeadSeq != 0 || rep.HeadHash != audit.Genesis {
			t.Fatalf("empty log: %+v", rep)
		}
		insert(t, b.st, 0, 5)
		insert(t, b.st, 5, 1200)
		if rep := verify(t, b.st, audit.VerifyOptions{}); !rep.OK || rep.Checked != 0 || rep.Unsealed != 1205 {
			t.Fatalf("before sealing: %+v", rep)
		}
		s := audit.NewSealer(b.st, audit.SealerOptions{Batch: 500})
		n, err := s.SealBatch(ctx)
		if err != nil || n != 500 {
			t.Fatalf("SealBatch = %d, %v; want 500", n, err)
		}
		if n, err := s.Seal(ctx, 0); err != nil || n != 705 {
			t.Fatalf("Seal = %d, %v; want 705", n, err)
		}
		rep = verify(t, b.st, audit.VerifyOptions{})
		if !rep.OK || rep.Checked != 1205 || rep.Unsealed != 0 || rep.FirstSeq != 1 || rep.HeadSeq != 1205 {
			t.Fatalf("after sealing: %+v", rep)
		}
		// A new sealer (a restarted leader) finds the head and continues.
		insert(t, b.st, 1205, 3)
		if rep := verify(t, b.st, audit.VerifyOptions{}); !rep.OK || rep.Unsealed != 3 || rep.Checked != 1205 {
			t.Fatalf("with 3 unsealed: %+v", rep)
		}
		if n := seal(t, b.st); n != 3 {
			t.Fatalf("second sealer sealed %d, want 3", n)
		}
		evs := events(t, b.st)
		for i, ev := range evs {
			if ev.Seq != int64(i+1) || ev.Hash == "" || ev.SealedAt.IsZero() {
				t.Fatalf("event %d: seq %d hash %q", i, ev.Seq, ev.Hash)
			}
			prev := audit.Genesis
			if i > 0 {
				prev = evs[i-1].Hash
			}
			if ev.PrevHash != prev {
				t.Fatalf("seq %d: prev_hash %s, want %s", ev.Seq, ev.PrevHash, prev)
			}
		}
		head, err := audit.FindHead(ctx, b.st)
		if err != nil || head.Seq != 1208 || head.Hash != evs[len(evs)-1].Hash {
			t.Fatalf("FindHead = %+v, %v; want seq 1208", head, err)
		}
		rep = verify(t, b.st, audit.VerifyOptions{})
		if !rep.OK || rep.Checked != 1208 || rep.HeadHash != head.Hash {
			t.Fatalf("final: %+v", rep)
		}
		// The old sealer's cached head is stale: it notices and continues.
		insert(t, b.st, 1208, 2)
		if n, err := s.Seal(ctx, 0); err != nil || n != 2 {
			t.Fatalf("stale sealer: %d, %v", n, err)
		}
		if rep := verify(t, b.st, audit.VerifyOptions{}); !rep.OK || rep.Checked != 1210 {
			t.Fatalf("after the stale sealer: %+v", rep)
		}
	})
}

func TestFindHead(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		s := audit.NewSealer(b.st, audit.SealerOptions{Batch: 1})
		for _, want := range []int64{1, 2, 3, 4, 5, 7, 8, 9, 16, 17, 33} {
			for {
				h, err := audit.FindHead(ctx, b.st)
				if err != nil {
					t.Fatal(err)
				}
				if h.Seq == want {
					break
				}
				if h.Seq > want {
					t.Fatalf("head %d passed %d", h.Seq, want)
				}
				insert(t, b.st, int(h.Seq), 1)
				if _, err := s.SealBatch(ctx); err != nil {
					t.Fatal(err)
				}
				// Check every head on the way, against a full scan.
				evs := events(t, b.st)
				last := evs[len(evs)-1]
				if h2, _ := audit.FindHead(ctx, b.st); h2.Seq != last.Seq || h2.Hash != last.Hash {
					t.Fatalf("FindHead = %+v, want seq %d", h2, last.Seq)
				}
			}
		}
	})
}

// TestConcurrentSealers runs several sealers beside writers: every event
// ends up sealed exactly once, in one unbroken chain.
func TestConcurrentSealers(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, b bundle) {
		ctx := context.Background()
		const writers, perWriter, sealers = 4, 30, 3
		var wg sync.WaitGroup
		done := make(chan struct{})
		for w := range writers {
			wg.Go(func() {
				for i := range perWriter {
					insert(t, b.st, 10_000*w+10*i, 10)
				}
			})
		}
		var sw sync.WaitGroup
		errs := make(chan error, sealers)
		for range sealers {
			sw.Go(func() {
				s := audit.NewSealer(b.st, audit.SealerOptions{Batch: 37})
				for {
					select {
					case <-done:
						_, err := s.Seal(ctx, 0)
						errs <- err
						return
					default:
					}
					if _, err := s.Seal(ctx, 0); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(done)
		sw.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatalf("sealer: %v", err)
			}
		}
		seal(t, b.st)
		rep := verify(t, b.st, audit.VerifyOptions{})
		if !rep.OK || rep.Checked != writers*perWriter*10 || rep.Unsealed != 0 {
			t.Fatalf("after concurrent sealing: %+v", rep)
		}
	})
}

func TestVerifySince(t *testing.T) {
	t.Parallel()
	eachDialect(t, func(t *testing.T, b bundle) {
		insert(t, b.st, 0, 100)
		seal(t, b.st)
		insert(t, b.st, 100, 4)
		var visited int
		rep := verify(t, b.st, audit.VerifyOptions{Since: t0.Add(60 * time.Second), Visit: func(store.AuditEvent) { visited++ }})
		if !rep.OK || rep.FirstSeq != 61 || rep.Checked != 40 || rep.HeadSeq != 100 || rep.Unsealed != 4 || rep.Since == nil {
			t.Fatalf("since: %+v", rep)
		}
		if visited != 44 {
			t.Errorf("visited %d events, want 44", visited)
		}
		// Tampering before the window is outside the check...
		b.exec(t, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 10")
		if rep := verify(t, b.st, audit.VerifyOptions{Since: t0.Add(60 * time.Second)}); !rep.OK {
			t.Fatalf("since, tampered before: %+v", rep)
		}
		// ...and inside it is found.
		b.exec(t, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 70")
		rep = verify(t, b.st, audit.VerifyOptions{Since: t0.Add(60 * time.Second)})
		if rep.OK || rep.Problem.Seq != 70 || rep.Problem.Kind != audit.ProblemModified {
			t.Fatalf("since, tampered inside: %+v", rep)
		}
		// Nothing sealed in the window.
		rep = verify(t, b.st, audit.VerifyOptions{Since: t0.Add(time.Hour)})
		if !rep.OK || rep.Checked != 0 || rep.Unsealed != 4 {
			t.Fatalf("empty window: %+v", rep)
		}
	})
}

func TestRecord(t *testing.T) {
	t.Parallel()
	ev := store.AuditEvent{ID: 3, OccurredAt: t0, Action: "config.applied", Data: json.RawMessage(`{"b":1, "a":2}`)}
	b, err := json.Marshal(audit.NewRecord(ev))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":3,"seq":null,"occurred_at":"2026-03-01T12:00:00.123456Z","actor":"","action":"config.applied","credential":null,"run":null,"data":{"a":2,"b":1},"prev_hash":null,"hash":null,"sealed_at":null}`
	if string(b) != want {
		t.Errorf("record = %s\nwant     %s", b, want)
	}
	ev.Data = json.RawMessage(`not json`)
	if _, err := json.Marshal(audit.NewRecord(ev)); err != nil {
		t.Errorf("a record of a hand-edited event must still encode: %v", err)
	}
}
