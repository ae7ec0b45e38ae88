package store

import (
	"context"
	"encoding/json"
	"time"
)

// Delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// NotifyEvent is a row of the notification outbox: an event (notify.Event
// encoded in Payload) written in the transaction of the change it
// describes. It never holds a secret value.
type NotifyEvent struct {
	ID           string
	Kind         string
	OccurredAt   time.Time
	CredentialID string
	RunID        string
	Payload      json.RawMessage
	// RoutedAt is when the dispatcher routed it; zero until then.
	RoutedAt time.Time
}

// NotifyOutbox is the notification events of one commit in one row
// (migration 00012): the engine writes one per commit that notes events,
// so a rotation's commit carries one outbox row however many events it
// causes. The leader expands it into NotifyEvent rows before routing.
type NotifyOutbox struct {
	// ID is the id of its first event.
	ID string
	// OccurredAt is the time of its latest event.
	OccurredAt time.Time
	// Events is a JSON array of events (notify.Event, schema version 1:
	// "id", "kind", "time", "credential" and "run_id" fill the columns of
	// notify_events); each element becomes a NotifyEvent's Payload as it is.
	Events json.RawMessage
}

// NotifyItem is an event routed to one receiver's group, waiting for (or
// sent in) a delivery.
type NotifyItem struct {
	EventID      string
	Receiver     string
	GroupKey     string
	Kind         string
	CredentialID string
	CreatedAt    time.Time
	// DeliveryID is empty while the item waits for its group's next message.
	DeliveryID string
}

// NotifyGroup summarises the waiting items of one receiver's group.
type NotifyGroup struct {
	Receiver string
	GroupKey string
	// FirstAt is when the oldest waiting item was routed; Waiting counts them.
	FirstAt time.Time
	Waiting int
	// LastSentAt is when the group's last delivery was created; zero if none.
	LastSentAt time.Time
}

// NotifyDelivery is one message to one receiver. Its ID is the delivery id
// receivers see (webhook-id); Events are the events as sent on every
// attempt.
type NotifyDelivery struct {
	ID         string
	Receiver   string
	GroupKey   string
	State      string
	Events     json.RawMessage
	EventCount int
	Attempts   int
	LastError  string
	CreatedAt  time.Time
	UpdatedAt  time.Time
	FinishedAt time.Time
}

// NotifyAttempt is one try of a delivery.
type NotifyAttempt struct {
	DeliveryID string
	Attempt    int
	At         time.Time
	Status     string
	Error      string
}

// DeliveryFilter selects deliveries, newest first. Zero fields match all.
type DeliveryFilter struct {
	IDs      []string
	Receiver string
	State    string
	// RunID selects deliveries carrying an event of the run.
	RunID string
	// Since (inclusive) and Until (exclusive) bound CreatedAt.
	Since, Until time.Time
	Limit        int
}

// NotifyReader reads the notification tables.
type NotifyReader interface {
	// ListNotifyEvents returns the events of a kind that occurred at or
	// after since, oldest first (routed or not), those still in the
	// notification outbox (NotifyOutbox rows not yet expanded) included.
	// Only rotation.emergency has an index; other kinds are read by a scan
	// (tests, tools).
	ListNotifyEvents(ctx context.Context, kind string, since time.Time) ([]NotifyEvent, error)
	// ListUnroutedNotifyEvents returns up to limit events not yet routed,
	// oldest first.
	ListUnroutedNotifyEvents(ctx context.Context, limit int) ([]NotifyEvent, error)
	// NotifiedSince reports whether an item of the kind for the credential
	// was routed to the receiver at or after since (repeat_interval).
	NotifiedSince(ctx context.Context, receiver, kind, credentialID string, since time.Time) (bool, error)
	// ListNotifyGroups returns every group with waiting items.
	ListNotifyGroups(ctx context.Context) ([]NotifyGroup, error)
	// ListWaitingNotifyEvents returns up to limit events waiting in a
	// group, in routing order.
	ListWaitingNotifyEvents(ctx context.Context, receiver, groupKey string, limit int) ([]NotifyEvent, error)
	// GetNotifyDelivery returns a delivery; ErrNotFound if none.
	GetNotifyDelivery(ctx context.Context, id string) (NotifyDelivery, error)
	// ListNotifyDeliveries returns deliveries, newest first.
	ListNotifyDeliveries(ctx context.Context, f DeliveryFilter) ([]NotifyDelivery, error)
	// ListNotifyAttempts returns the attempts of the given deliveries, by
	// delivery and attempt.
	ListNotifyAttempts(ctx context.Context, deliveryIDs []string) ([]NotifyAttempt, error)
}

// NotifyWriter writes the notification tables (inside a Tx).
type NotifyWriter interface {
	// InsertNotifyEvents appends events to the outbox. In a pipelined
	// transaction it is queued with the other writes (no round trip).
	InsertNotifyEvents(ctx context.Context, evs ...NotifyEvent) error
	// InsertNotifyOutbox writes outbox rows. In a pipelined transaction it
	// is queued with the other writes (no round trip).
	InsertNotifyOutbox(ctx context.Context, rows ...NotifyOutbox) error
	// ExpandNotifyOutbox moves up to limit outbox rows, oldest id first,
	// into notify_events: each event under the id it was given (an id
	// already there is left as it is), and the row deleted, in the
	// transaction. It returns how many rows and events it moved.
	ExpandNotifyOutbox(ctx context.Context, limit int) (rows, events int, err error)
	// RouteNotifyEvents inserts the items the events were routed to and
	// marks the events routed at the given time.
	RouteNotifyEvents(ctx context.Context, at time.Time, eventIDs []string, items []NotifyItem) error
	// CreateNotifyDelivery inserts a delivery and assigns to it the
	// waiting items of its receiver and group for the given events.
	CreateNotifyDelivery(ctx context.Context, d NotifyDelivery, eventIDs []string) error
	// UpdateNotifyDelivery writes State, Attempts, LastError, UpdatedAt and
	// FinishedAt.
	UpdateNotifyDelivery(ctx context.Context, d NotifyDelivery) error
	// InsertNotifyAttempts records attempts.
	InsertNotifyAttempts(ctx context.Context, as ...NotifyAttempt) error
	// PruneNotify deletes up to limit settled deliveries finished before
	// the given time (with their items and attempts), then up to limit
	// events routed before it that no remaining item refers to. It returns
	// how many rows of each it deleted.
	PruneNotify(ctx context.Context, before time.Time, limit int) (deliveries, events int, err error)
}
