package rotation

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/riverqueue/river"

	"github.com/rotatorhq/rotator/internal/store"
)

// QueueNotify is the River queue of notification deliveries.
const QueueNotify = "notify"

// DeliverArgs is the River job that sends one notification delivery
// (notify/outbox creates the delivery and inserts the job in one
// transaction).
type DeliverArgs struct {
	DeliveryID string `json:"delivery_id"`
}

// Kind implements river.JobArgs.
func (DeliverArgs) Kind() string { return "rotator.notify" }

// Deliverer sends one delivery: nil once it is settled (delivered or
// failed for good), an error to be tried again later; lastChance asks it to
// settle.
type Deliverer interface {
	Deliver(ctx context.Context, deliveryID string, lastChance bool) error
}

// Delivery job settings: attempts of the job (each runs the retry stage,
// which waits at most about a minute inside it) spaced by River's retry
// policy below, so a receiver down for hours still gets its message.
const (
	deliverJobAttempts = 12
	deliverJobTimeout  = 3 * time.Minute
)

type deliverWorker struct {
	river.WorkerDefaults[DeliverArgs]
	d Deliverer
}

func (w *deliverWorker) Timeout(*river.Job[DeliverArgs]) time.Duration { return deliverJobTimeout }

func (w *deliverWorker) Work(ctx context.Context, j *river.Job[DeliverArgs]) error {
	return w.d.Deliver(ctx, j.Args.DeliveryID, j.Attempt >= j.MaxAttempts)
}

// NextRetry spaces the job's attempts: 1, 2, 4, ... minutes, at most an
// hour.
func (w *deliverWorker) NextRetry(j *river.Job[DeliverArgs]) time.Time {
	return time.Now().Add(time.Duration(min(1<<min(j.Attempt-1, 6), 60)) * time.Minute)
}

// addDeliverer registers the delivery worker and its queue (setupRiver)
// when the runner has a Deliverer.
func addDeliverer(r *Runner, workers *river.Workers, cfg *river.Config) error {
	if r.opts.Deliverer == nil {
		return nil
	}
	if err := river.AddWorkerSafely(workers, &deliverWorker{d: r.opts.Deliverer}); err != nil {
		return err
	}
	cfg.Queues[QueueNotify] = river.QueueConfig{MaxWorkers: max(r.opts.NotifyWorkers, 1)}
	return nil
}

// EnqueueDeliveries inserts a delivery job per id in tx, so the jobs exist
// exactly when the deliveries do.
func (r *Runner) EnqueueDeliveries(ctx context.Context, tx store.Tx, ids []string) error {
	if r.insertDeliver == nil {
		return errors.New("this runner has no notification deliverer")
	}
	return r.insertDeliver(ctx, tx, ids)
}

func insertDeliverFunc[TTx any](client *river.Client[TTx]) func(ctx context.Context, tx store.Tx, ids []string) error {
	return func(ctx context.Context, tx store.Tx, ids []string) error {
		raw, ok := tx.Raw().(TTx)
		if !ok {
			return fmt.Errorf("store transaction %T is not a %T", tx.Raw(), raw)
		}
		params := make([]river.InsertManyParams, len(ids))
		for i, id := range ids {
			params[i] = river.InsertManyParams{Args: DeliverArgs{DeliveryID: id},
				InsertOpts: &river.InsertOpts{Queue: QueueNotify, MaxAttempts: deliverJobAttempts}}
		}
		_, err := client.InsertManyFastTx(ctx, raw, params)
		return err
	}
}
