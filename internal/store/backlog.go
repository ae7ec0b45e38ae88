package store

import "time"

// Backlog is what waits for the work of a running service's leader
// (Reader.Backlog): each count with the time of its oldest item, the zero
// time when there is none. With no 'rotator serve' leading, every count
// only grows.
type Backlog struct {
	// OutboxRows counts notification outbox rows (NotifyOutbox, one per
	// commit) and OutboxEvents the events they hold; OutboxOldest is the
	// earliest row's time (the time of its latest event). The leader moves
	// them into notify_events about every 2 seconds.
	OutboxRows, OutboxEvents int64
	OutboxOldest             time.Time
	// UnroutedEvents counts notification events not yet routed (written
	// to notify_events directly, or moved there from the outbox);
	// UnroutedOldest is the earliest's time.
	UnroutedEvents int64
	UnroutedOldest time.Time
	// UnsealedEvents counts audit events the sealer has not chained yet;
	// UnsealedOldest is the earliest's time.
	UnsealedEvents int64
	UnsealedOldest time.Time
	// Due counts the live credentials the scheduler would start a run for
	// at the time asked about (as Engine.EnqueueDue selects them): next
	// rotation at or before it, no active run, and a status other than
	// rotating or needs_attention. DueOldest is the earliest next rotation
	// among them.
	Due       int64
	DueOldest time.Time
}

// SchedulerExcludes are the statuses the scheduler starts no run for
// (Engine.EnqueueDue), and so Backlog's Due leaves out.
var SchedulerExcludes = []Status{StatusRotating, StatusNeedsAttention}
