package storetest

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// BenchmarkRotations measures the store's share of a rotation: per
// iteration, three transactions as the engine runs them (plan: lock, run,
// step, audit; mint: pending version, run, step, audit, state; finish:
// promote, retire, run, step, audit, state) on one of 1,000 credentials,
// from 16 goroutines per CPU. s must be migrated and empty.
func BenchmarkRotations(b *testing.B, s store.Store) {
	ctx := b.Context()
	const creds = 1000
	err := s.InTx(ctx, func(tx store.Tx) error {
		if err := tx.UpsertProvider(ctx, provider("gen")); err != nil {
			return err
		}
		for i := range creds {
			id := fmt.Sprintf("cred-%04d", i)
			if err := tx.UpsertCredentialSpec(ctx, credential(id)); err != nil {
				return err
			}
			if err := tx.InsertVersion(ctx, version(id+"-v0", id, store.StageCurrent, t0)); err != nil {
				return err
			}
			if err := tx.UpdateCredentialState(ctx, id, store.CredentialState{Status: store.StatusHealthy, CurrentVersionID: id + "-v0"}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var next atomic.Int64
	b.SetParallelism(16) // engine workers wait on the database, not the CPU
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n := next.Add(1)
			id := fmt.Sprintf("cred-%04d", n%creds)
			runID := fmt.Sprintf("run-%d", n)
			newID := fmt.Sprintf("%s-v%d", id, n)
			var r store.Run
			step := func(tx store.Tx, seq int, name string) error {
				if err := tx.InsertStep(ctx, store.Step{RunID: runID, Seq: seq, Name: name, State: "ok", StartedAt: time.Now()}); err != nil {
					return err
				}
				return tx.InsertAuditEvents(ctx, store.AuditEvent{Action: "run." + name, CredentialID: id, RunID: runID})
			}
			err := s.InTx(ctx, func(tx store.Tx) error {
				if _, err := tx.LockCredential(ctx, id); err != nil {
					return err
				}
				r = run(runID, id, time.Now())
				if err := tx.InsertRun(ctx, r); err != nil {
					return err
				}
				return step(tx, 1, "planned")
			})
			if err != nil {
				b.Error(err)
				return
			}
			err = s.InTx(ctx, func(tx store.Tx) error {
				c, err := tx.LockCredential(ctx, id)
				if err != nil {
					return err
				}
				if err := tx.InsertVersion(ctx, version(newID, id, store.StagePending, time.Now())); err != nil {
					return err
				}
				c.State.PendingVersionID = newID
				c.State.Status = store.StatusRotating
				if err := tx.UpdateCredentialState(ctx, id, c.State); err != nil {
					return err
				}
				r.State = "minted"
				if err := tx.UpdateRun(ctx, r); err != nil {
					return err
				}
				return step(tx, 2, "minted")
			})
			if err != nil {
				b.Error(err)
				return
			}
			err = s.InTx(ctx, func(tx store.Tx) error {
				c, err := tx.LockCredential(ctx, id)
				if err != nil {
					return err
				}
				old := *c.Current
				old.Stage = store.StageRetired
				if err := tx.UpdateVersion(ctx, old); err != nil {
					return err
				}
				nv, err := tx.GetVersion(ctx, newID)
				if err != nil {
					return err
				}
				nv.Stage = store.StageCurrent
				if err := tx.UpdateVersion(ctx, nv); err != nil {
					return err
				}
				c.State = store.CredentialState{Status: store.StatusHealthy, CurrentVersionID: newID, LastRotatedAt: time.Now()}
				if err := tx.UpdateCredentialState(ctx, id, c.State); err != nil {
					return err
				}
				r.State, r.Active = "succeeded", false
				if err := tx.UpdateRun(ctx, r); err != nil {
					return err
				}
				return step(tx, 3, "succeeded")
			})
			if err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "rotations/s")
}
