package postgres

import "time"

// SetGroupLockWait sets how long a group waits for a row lock.
func SetGroupLockWait(s *Store, d time.Duration) { s.db.g.lockWait = d }

// PendingGroupMembers returns how many transactions wait for a group.
func PendingGroupMembers(s *Store) int {
	if s.db.g == nil {
		return 0
	}
	s.db.g.mu.Lock()
	defer s.db.g.mu.Unlock()
	return len(s.db.g.pending)
}
