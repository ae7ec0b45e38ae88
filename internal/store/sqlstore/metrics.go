package sqlstore

import (
	"context"
	"fmt"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// MetricsSnapshot implements store.Reader: the counts in one statement,
// the credentials in another (an index-only join on the current version).
func (r reader) MetricsSnapshot(ctx context.Context) (store.MetricsSnapshot, error) {
	var snap store.MetricsSnapshot
	counts, err := r.c.Query(ctx, `SELECT (SELECT count(*) FROM runs WHERE active), (SELECT count(*) FROM audit_pending)`)
	if err != nil {
		return snap, fmt.Errorf("metrics snapshot: %w", err)
	}
	for counts.Next() {
		if err := counts.Scan(&snap.ActiveRuns, &snap.UnsealedEvents); err != nil {
			counts.Close()
			return snap, fmt.Errorf("metrics snapshot: %w", err)
		}
	}
	err = counts.Err()
	counts.Close()
	if err != nil {
		return snap, fmt.Errorf("metrics snapshot: %w", err)
	}
	rows, err := r.c.Query(ctx, `SELECT c.id, c.consumer, c.provider, c.status, c.max_age_seconds, c.next_rotation_at, c.expires_at,
    v.id, COALESCE(v.activated_at, v.created_at)
FROM credentials c LEFT JOIN versions v ON v.id = c.current_version_id
WHERE c.deleted_at IS NULL ORDER BY c.id`)
	if err != nil {
		return snap, fmt.Errorf("metrics snapshot: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			g       store.CredentialGauge
			status  string
			maxAge  int64
			current string
		)
		if err := rows.Scan(&g.ID, &g.Consumer, &g.Provider, &status, &maxAge, &timeCol{&g.NextRotationAt}, &timeCol{&g.ExpiresAt},
			&textCol{&current}, &timeCol{&g.Issued}); err != nil {
			return snap, fmt.Errorf("metrics snapshot: %w", err)
		}
		g.Status, g.MaxAge, g.HasCurrent = store.Status(status), time.Duration(maxAge)*time.Second, current != ""
		snap.Credentials = append(snap.Credentials, g)
	}
	if err := rows.Err(); err != nil {
		return snap, fmt.Errorf("metrics snapshot: %w", err)
	}
	return snap, nil
}
