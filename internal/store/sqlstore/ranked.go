package sqlstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// The ranked order (store.RankKey) is read as three segments, each a
// query that an index serves in order, so the first page over any number
// of credentials reads about one page of rows: the credentials that need
// attention (few; by next rotation, unscheduled last, then id), the other
// scheduled ones (credentials_next_rotation_at_idx), the other
// unscheduled ones (the primary key).
const (
	segAttention = iota
	segScheduled
	segUnscheduled
)

// ListCredentialsRanked implements store.Reader.
func (r reader) ListCredentialsRanked(ctx context.Context, f store.RankedFilter) ([]store.Credential, error) {
	if f.Limit <= 0 {
		return nil, errors.New("list ranked credentials: a limit is required")
	}
	seg := segAttention
	if a := f.After; a != nil {
		switch {
		case a.Attention:
			seg = segAttention
		case !a.NextRotationAt.IsZero():
			seg = segScheduled
		default:
			seg = segUnscheduled
		}
	}
	var out []store.Credential
	after := f.After
	for ; seg <= segUnscheduled && len(out) < f.Limit; seg++ {
		page, err := r.rankedSegment(ctx, seg, after, f.Limit-len(out))
		if err != nil {
			return nil, fmt.Errorf("list ranked credentials: %w", err)
		}
		out = append(out, page...)
		after = nil // the next segment starts at its beginning
	}
	return out, nil
}

func (r reader) rankedSegment(ctx context.Context, seg int, after *store.RankKey, limit int) ([]store.Credential, error) {
	d := r.s.dialect()
	var q query
	// attention is a generated column, status IN store.AttentionStatuses
	// (migration 00014), the predicate of credentials_attention_idx.
	const attention = "c.attention"
	preds := []string{"c.deleted_at IS NULL"}
	var order string
	switch seg {
	case segAttention:
		preds = append(preds, attention)
		order = " ORDER BY c.next_rotation_at IS NULL, c.next_rotation_at, c.id"
		if after != nil {
			if after.NextRotationAt.IsZero() {
				preds = append(preds, "c.next_rotation_at IS NULL AND c.id > "+q.arg(after.ID))
			} else {
				t := q.arg(d.time(after.NextRotationAt))
				preds = append(preds, "(c.next_rotation_at > "+t+" OR (c.next_rotation_at = "+t+" AND c.id > "+q.arg(after.ID)+") OR c.next_rotation_at IS NULL)")
			}
		}
	case segScheduled:
		preds = append(preds, "NOT ("+attention+")", "c.next_rotation_at IS NOT NULL")
		order = " ORDER BY c.next_rotation_at, c.id"
		if after != nil {
			t := q.arg(d.time(after.NextRotationAt))
			preds = append(preds, "c.next_rotation_at >= "+t+" AND (c.next_rotation_at > "+t+" OR c.id > "+q.arg(after.ID)+")")
		}
	default:
		preds = append(preds, "NOT ("+attention+")", "c.next_rotation_at IS NULL")
		order = " ORDER BY c.id"
		if after != nil {
			preds = append(preds, "c.id > "+q.arg(after.ID))
		}
	}
	q.sql(credentialSummarySelect, where(preds), order, sqlLimit(limit))
	rows, err := r.c.Query(ctx, q.String(), q.args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanCredentials(rows, limit, false)
}

// Counts implements store.Reader in one statement: the total is an
// index-only count where the visibility map allows it, the others read
// credentials_attention_idx, credentials_next_rotation_at_idx and
// credentials_expires_at_idx.
func (r reader) Counts(ctx context.Context, now time.Time) (store.Counts, error) {
	var c store.Counts
	at := r.s.dialect().time(now)
	err := r.queryOne(ctx, `SELECT (SELECT count(*) FROM credentials WHERE deleted_at IS NULL),
    (SELECT count(*) FROM credentials WHERE deleted_at IS NULL AND attention AND status = 'failing'),
    (SELECT count(*) FROM credentials WHERE deleted_at IS NULL AND attention AND status = 'needs_attention'),
    (SELECT count(*) FROM credentials WHERE deleted_at IS NULL AND next_rotation_at <= $1),
    (SELECT count(*) FROM credentials WHERE deleted_at IS NULL AND expires_at <= $1 AND current_version_id IS NOT NULL),
    (SELECT count(*) FROM runs WHERE active),
    (SELECT COALESCE(max(seq), 0) FROM audit_events WHERE seq IS NOT NULL),
    (SELECT count(*) FROM audit_pending)`, []any{at},
		&c.Credentials, &c.Failing, &c.NeedsAttention, &c.Due, &c.Expired, &c.ActiveRuns, &c.SealedEvents, &c.UnsealedEvents)
	if err != nil {
		return c, fmt.Errorf("count credentials, runs and audit events: %w", err)
	}
	return c, nil
}
