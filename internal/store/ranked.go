package store

import "time"

// AttentionStatuses are the stored statuses that rank a credential first
// in ListCredentialsRanked: its rotations fail, and someone must look.
// The stores' generated column credentials.attention (migration 00014)
// lists the same statuses.
var AttentionStatuses = []Status{StatusFailing, StatusNeedsAttention}

// NeedsAttention reports whether s is one of AttentionStatuses.
func NeedsAttention(s Status) bool { return s == StatusFailing || s == StatusNeedsAttention }

// RankKey is a credential's place in the ranked order of
// ListCredentialsRanked: credentials whose stored status is one of
// AttentionStatuses first, then by next rotation (unscheduled last), then
// by id.
type RankKey struct {
	Attention bool
	// NextRotationAt is zero for an unscheduled credential.
	NextRotationAt time.Time
	ID             string
}

// RankKeyOf returns c's RankKey.
func RankKeyOf(c Credential) RankKey {
	return RankKey{Attention: NeedsAttention(c.State.Status), NextRotationAt: c.State.NextRotationAt, ID: c.ID}
}

// RankedFilter selects one page of ListCredentialsRanked.
type RankedFilter struct {
	// After is the key of the last credential of the previous page; nil
	// for the first page.
	After *RankKey
	// Limit caps the page (required, > 0).
	Limit int
}

// Counts are the totals the dashboard shows (Reader.Counts), each read
// through an index.
type Counts struct {
	// Credentials counts live credentials.
	Credentials int64
	// Failing and NeedsAttention count live credentials in those stored
	// statuses.
	Failing, NeedsAttention int64
	// Due counts live credentials whose next rotation is at or before the
	// time asked about; Expired those with a current version whose expiry
	// is.
	Due, Expired int64
	// ActiveRuns counts runs not yet finished.
	ActiveRuns int64
	// SealedEvents is the length of the audit chain (its head seq);
	// UnsealedEvents counts events the sealer has not chained yet.
	SealedEvents, UnsealedEvents int64
}
