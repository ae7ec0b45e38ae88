package notify

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"
)

// ErrGaveUp wraps the last error when the retry stage stops retrying a
// retryable failure (attempts or time exhausted).
var ErrGaveUp = errors.New("gave up retrying")

// RetryAfterError is a retryable failure whose server said how long to
// wait (HTTP 429 or 503 with Retry-After).
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string { return e.Err.Error() }

func (e *RetryAfterError) Unwrap() error { return e.Err }

// Defaults of the retry stage.
const (
	DefaultInitialBackoff = time.Second
	DefaultMaxBackoff     = time.Minute
	DefaultMaxAttempts    = 8
	DefaultMaxElapsed     = 10 * time.Minute
)

// Attempt is one try of a delivery, as the retry stage records it.
type Attempt struct {
	// N counts from 1.
	N  int
	At time.Time
	// Status is AttemptDelivered, AttemptRetry (failed, will retry) or
	// AttemptFailed (failed for good).
	Status string
	// Error is the failure (scrubbed by the receiver); empty when delivered.
	Error string
	// Wait is the delay before the next attempt (AttemptRetry).
	Wait time.Duration
}

// Attempt statuses.
const (
	AttemptDelivered = "delivered"
	AttemptRetry     = "retry"
	AttemptFailed    = "failed"
)

// Retrier is the one retry stage (after Alertmanager's RetryStage): it
// sends a message through a receiver until it is delivered, the receiver
// says the failure is not worth retrying (a 4xx other than 429), or the
// bounds are reached. Waits grow exponentially with jitter, a server's
// Retry-After is honoured, and it logs only when the error changes.
type Retrier struct {
	// Initial and Max bound the backoff (defaults DefaultInitialBackoff
	// and DefaultMaxBackoff).
	Initial, Max time.Duration
	// MaxAttempts bounds the tries (default DefaultMaxAttempts); 1 sends
	// once.
	MaxAttempts int
	// MaxElapsed bounds the time spent, waits included (default
	// DefaultMaxElapsed); a Retry-After beyond it ends the loop.
	MaxElapsed time.Duration
	// Now and Sleep are the clock (defaults time.Now and a timer that
	// honours ctx); tests inject both.
	Now   func() time.Time
	Sleep func(ctx context.Context, d time.Duration) error
	// Rand returns a number in [0, 1) for the jitter (default math/rand/v2).
	Rand   func() float64
	Logger *slog.Logger
}

func (r Retrier) withDefaults() Retrier {
	if r.Initial <= 0 {
		r.Initial = DefaultInitialBackoff
	}
	if r.Max <= 0 {
		r.Max = DefaultMaxBackoff
	}
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = DefaultMaxAttempts
	}
	if r.MaxElapsed <= 0 {
		r.MaxElapsed = DefaultMaxElapsed
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.Sleep == nil {
		r.Sleep = sleep
	}
	if r.Rand == nil {
		r.Rand = rand.Float64
	}
	if r.Logger == nil {
		r.Logger = slog.New(slog.DiscardHandler)
	}
	return r
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// Backoff is the wait before attempt n+1 after n failures, without
// Retry-After: Initial·2^(n-1), capped at Max, of which the upper half is
// random (jitter, so that receivers failing together do not retry in step).
func (r Retrier) Backoff(n int) time.Duration {
	r = r.withDefaults()
	d := r.Initial
	for i := 1; i < n && d < r.Max; i++ {
		d *= 2
	}
	d = min(d, r.Max)
	return d/2 + time.Duration(r.Rand()*float64(d/2))
}

// Deliver sends msg through rcv until it is delivered or the stage gives
// up, calling record after every attempt (to store it). It returns nil when
// delivered, the receiver's error when it is not worth retrying, and an
// error wrapping ErrGaveUp and the last error when the bounds are reached.
func (r Retrier) Deliver(ctx context.Context, rcv Receiver, msg Message, record func(Attempt)) error {
	r = r.withDefaults()
	log := r.Logger.With(slog.String("receiver", msg.Receiver), slog.String("delivery", msg.DeliveryID))
	start := r.Now()
	lastErr := ""
	for n := 1; ; n++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("delivery %s to %s: %w", msg.DeliveryID, msg.Receiver, err)
		}
		retry, err := rcv.Notify(ctx, msg)
		at := r.Now()
		if err == nil {
			if lastErr != "" {
				log.Info("notification delivered after retries", slog.Int("attempts", n))
			}
			if record != nil {
				record(Attempt{N: n, At: at, Status: AttemptDelivered})
			}
			return nil
		}
		msgErr := err.Error()
		if msgErr != lastErr {
			// Logged once per distinct error, not once per attempt.
			log.Warn("notification attempt failed", slog.Int("attempt", n), slog.Bool("retry", retry), slog.String("error", msgErr))
			lastErr = msgErr
		}
		if !retry {
			if record != nil {
				record(Attempt{N: n, At: at, Status: AttemptFailed, Error: msgErr})
			}
			return err
		}
		wait := r.Backoff(n)
		if ra, ok := errors.AsType[*RetryAfterError](err); ok && ra.After > 0 {
			wait = ra.After
		}
		if n >= r.MaxAttempts || at.Add(wait).Sub(start) > r.MaxElapsed {
			if record != nil {
				record(Attempt{N: n, At: at, Status: AttemptFailed, Error: msgErr})
			}
			return fmt.Errorf("delivery %s to %s after %d attempts: %w: %w", msg.DeliveryID, msg.Receiver, n, ErrGaveUp, err)
		}
		if record != nil {
			record(Attempt{N: n, At: at, Status: AttemptRetry, Error: msgErr, Wait: wait})
		}
		if err := r.Sleep(ctx, wait); err != nil {
			return fmt.Errorf("delivery %s to %s: %w", msg.DeliveryID, msg.Receiver, err)
		}
	}
}
