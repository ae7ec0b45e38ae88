package audit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/internal/audit"
	"github.com/rotatorhq/rotator/internal/store"
)

// renumber adds delta to the seq of every event after seq from, in two
// statements so that no intermediate row collides with the UNIQUE seq.
func renumber(t testing.TB, b bundle, from, delta int) {
	t.Helper()
	b.exec(t, fmt.Sprintf("UPDATE audit_events SET seq = -(seq + %d) WHERE seq > %d", delta, from))
	b.exec(t, "UPDATE audit_events SET seq = -seq WHERE seq < 0")
}

// swap exchanges the chain positions of two events.
func swap(t testing.TB, b bundle, x, y int) {
	t.Helper()
	b.exec(t, fmt.Sprintf("UPDATE audit_events SET seq = -1 WHERE seq = %d", x))
	b.exec(t, fmt.Sprintf("UPDATE audit_events SET seq = %d WHERE seq = %d", x, y))
	b.exec(t, fmt.Sprintf("UPDATE audit_events SET seq = %d WHERE seq = -1", y))
}

// insertAt puts a forged event at seq pos (after renumbering the rest),
// linked to the event before it, with the given hash ("" computes the right
// one, as an attacker who knows the algorithm would). It returns its id.
func insertAt(t testing.TB, b bundle, pos int, hash string) int64 {
	t.Helper()
	renumber(t, b, pos-1, 1)
	h := hash
	if h == "" {
		h = "placeholder"
	}
	b.exec(t, fmt.Sprintf(`INSERT INTO audit_events (occurred_at, actor, action, credential_id, run_id, data, seq, prev_hash, hash, sealed_at)
SELECT occurred_at, 'mallory', 'run.cut_over', credential_id, run_id, data, %d, hash, '%s', sealed_at FROM audit_events WHERE seq = %d`, pos, h, pos-1))
	var forged store.AuditEvent
	for _, ev := range events(t, b.st) {
		if ev.Seq == int64(pos) {
			forged = ev
		}
	}
	if forged.Actor != "mallory" {
		t.Fatalf("forged event not found at seq %d", pos)
	}
	if hash == "" {
		right, err := audit.Hash(forged.PrevHash, forged)
		if err != nil {
			t.Fatal(err)
		}
		b.exec(t, fmt.Sprintf("UPDATE audit_events SET hash = '%s' WHERE id = %d", right, forged.ID))
	}
	return forged.ID
}

// TestTamper changes a sealed log behind the store's back, through raw SQL,
// and checks that Verify finds each change and names the first bad event.
func TestTamper(t *testing.T) {
	t.Parallel()
	type want struct {
		kind audit.ProblemKind
		seq  int64
		// id of the first bad event: the event at this seq before tampering
		// (0: use the returned id).
		idAtSeq int64
	}
	tests := map[string]struct {
		tamper func(t *testing.T, b bundle) int64 // returns the forged id, if any
		want   want
	}{
		"modify actor": {
			tamper: func(t *testing.T, b bundle) int64 {
				b.exec(t, "UPDATE audit_events SET actor = 'mallory' WHERE seq = 7")
				return 0
			},
			want: want{audit.ProblemModified, 7, 7},
		},
		"modify data": {
			tamper: func(t *testing.T, b bundle) int64 {
				b.exec(t, `UPDATE audit_events SET data = '{"step":"mint","attempt":99}' WHERE seq = 12`)
				return 0
			},
			want: want{audit.ProblemModified, 12, 12},
		},
		"modify first event's run": {
			tamper: func(t *testing.T, b bundle) int64 {
				b.exec(t, "UPDATE audit_events SET run_id = 'run-x' WHERE seq = 1")
				return 0
			},
			want: want{audit.ProblemModified, 1, 1},
		},
		"modify last event's action": {
			tamper: func(t *testing.T, b bundle) int64 {
				b.exec(t, "UPDATE audit_events SET action = 'run.noop' WHERE seq = 20")
				return 0
			},
			want: want{audit.ProblemModified, 20, 20},
		},
		"modify hash": {
			tamper: func(t *testing.T, b bundle) int64 {
				b.exec(t, "UPDATE audit_events SET hash = 'ffff' WHERE seq = 9")
				return 0
			},
			want: want{audit.ProblemModified, 9, 9},
		},
		"swap two fields": {
			tamper: func(t *testing.T, b bundle) int64 {
				b.exec(t, "UPDATE audit_events SET credential_id = CASE seq WHEN 4 THEN 'cred-5' ELSE 'cred-4' END WHERE seq IN (4, 5)")
				return 0
			},
			want: want{audit.ProblemModified, 4, 4},
		},
		"delete one": {
			tamper: func(t *testing.T, b bundle) int64 {
				b.exec(t, "DELETE FROM audit_events WHERE seq = 7")
				return 0
			},
			want: want{audit.ProblemDeleted, 7, 8},
		},
		"delete the first": {
			tamper: func(t *testing.T, b bundle) int64 {
				b.exec(t, "DELETE FROM audit_events WHERE seq = 1")
				return 0
			},
			want: want{audit.ProblemDeleted, 1, 2},
		},
		"delete three": {
			tamper: func(t *testing.T, b bundle) int64 {
				b.exec(t, "DELETE FROM audit_events WHERE seq BETWEEN 10 AND 12")
				return 0
			},
			want: want{audit.ProblemDeleted, 10, 13},
		},
		"delete one and renumber": {
			tamper: func(t *testing.T, b bundle) int64 {
				b.exec(t, "DELETE FROM audit_events WHERE seq = 7")
				renumber(t, b, 7, -1)
				return 0
			},
			want: want{audit.ProblemDeleted, 7, 8},
		},
		"insert one with a made-up hash": {
			tamper: func(t *testing.T, b bundle) int64 { return insertAt(t, b, 8, strings.Repeat("ab", 32)) },
			want:   want{audit.ProblemInserted, 8, 0},
		},
		"insert one with a computed hash": {
			tamper: func(t *testing.T, b bundle) int64 { return insertAt(t, b, 8, "") },
			want:   want{audit.ProblemInserted, 8, 0},
		},
		"insert one first": {
			tamper: func(t *testing.T, b bundle) int64 {
				renumber(t, b, 0, 1)
				b.exec(t, `INSERT INTO audit_events (occurred_at, actor, action, seq, prev_hash, hash)
SELECT occurred_at, 'mallory', 'config.applied', 1, prev_hash, 'abcd' FROM audit_events WHERE seq = 2`)
				for _, ev := range events(t, b.st) {
					if ev.Seq == 1 {
						return ev.ID
					}
				}
				return -1
			},
			want: want{audit.ProblemInserted, 1, 0},
		},
		"swap adjacent": {
			tamper: func(t *testing.T, b bundle) int64 { swap(t, b, 7, 8); return 0 },
			want:   want{audit.ProblemReordered, 7, 8},
		},
		"swap distant": {
			tamper: func(t *testing.T, b bundle) int64 { swap(t, b, 5, 15); return 0 },
			want:   want{audit.ProblemReordered, 5, 15},
		},
		"swap first and last": {
			tamper: func(t *testing.T, b bundle) int64 { swap(t, b, 1, 20); return 0 },
			want:   want{audit.ProblemReordered, 1, 20},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			eachDialect(t, func(t *testing.T, b bundle) {
				insert(t, b.st, 0, 8)
				insert(t, b.st, 8, 12)
				seal(t, b.st)
				before := events(t, b.st)
				if rep := verify(t, b.st, audit.VerifyOptions{}); !rep.OK || rep.Checked != 20 {
					t.Fatalf("before tampering: %+v", rep)
				}
				forged := tc.tamper(t, b)
				rep := verify(t, b.st, audit.VerifyOptions{})
				if rep.OK || rep.Problem == nil {
					t.Fatalf("tampering not detected: %+v", rep)
				}
				p := rep.Problem
				wantID := forged
				if tc.want.idAtSeq > 0 {
					wantID = before[tc.want.idAtSeq-1].ID
				}
				if p.Kind != tc.want.kind || p.Seq != tc.want.seq || p.EventID != wantID {
					t.Errorf("problem = %s at seq %d, event %d; want %s at seq %d, event %d\n%s",
						p.Kind, p.Seq, p.EventID, tc.want.kind, tc.want.seq, wantID, p.Message)
				}
				if !strings.Contains(p.Message, fmt.Sprintf("event %d", wantID)) || !strings.Contains(p.Message, fmt.Sprintf("seq %d", tc.want.seq)) {
					t.Errorf("message does not name seq %d / event %d: %s", tc.want.seq, wantID, p.Message)
				}
				if rep.Checked >= 20 {
					t.Errorf("checked %d events past the break", rep.Checked)
				}
				t.Log(p.Message)
			})
		})
	}
}

// TestTamperThroughPending uses audit_pending, where unsealed events wait,
// to hide or repeat sealed events: neither launders them.
func TestTamperThroughPending(t *testing.T) {
	t.Parallel()
	const copyBack = `INSERT INTO audit_pending (id, occurred_at, actor, action, credential_id, run_id, data)
SELECT id, occurred_at, actor, action, credential_id, run_id, data FROM audit_events WHERE seq = %d`
	t.Run("copy of a sealed event", func(t *testing.T) {
		t.Parallel()
		eachDialect(t, func(t *testing.T, b bundle) {
			insert(t, b.st, 0, 20)
			seal(t, b.st)
			b.exec(t, fmt.Sprintf(copyBack, 5))
			// The copy is never sealed: the event's id is taken, which
			// no race between sealers can cause, so it is not retried.
			_, err := audit.NewSealer(b.st, audit.SealerOptions{}).Seal(context.Background(), 0)
			if err == nil || errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "audit_pending holds a copy of a sealed event") {
				t.Fatalf("sealing a copy of a sealed event: %v", err)
			}
			rep := verify(t, b.st, audit.VerifyOptions{})
			if !rep.OK || rep.Checked != 20 || rep.Unsealed != 1 {
				t.Fatalf("after the failed seal: %+v", rep)
			}
		})
	})
	t.Run("sealed event moved back", func(t *testing.T) {
		t.Parallel()
		eachDialect(t, func(t *testing.T, b bundle) {
			insert(t, b.st, 0, 20)
			seal(t, b.st)
			before := events(t, b.st)
			// Moved back to the queue, the event is sealed again at the
			// head, with a valid hash; its old place is a gap.
			b.exec(t, fmt.Sprintf(copyBack, 7))
			b.exec(t, "DELETE FROM audit_events WHERE seq = 7")
			if n := seal(t, b.st); n != 1 {
				t.Fatalf("sealed %d events, want the one moved back", n)
			}
			rep := verify(t, b.st, audit.VerifyOptions{})
			if rep.OK || rep.Problem == nil || rep.Problem.Kind != audit.ProblemDeleted || rep.Problem.Seq != 7 ||
				rep.Problem.EventID != before[7].ID {
				t.Fatalf("moving a sealed event back through audit_pending: %+v", rep)
			}
		})
	})
}
