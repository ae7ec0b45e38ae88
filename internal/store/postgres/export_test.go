package postgres

import "time"

// SetGroupLockWait sets how long a group waits for a row lock.
func SetGroupLockWait(s *Store, d time.Duration) { s.g.lockWait = d }

// PendingGroupMembers returns how many transactions wait for a group.
func PendingGroupMembers(s *Store) int {
	if s.g == nil {
		return 0
	}
	s.g.mu.Lock()
	defer s.g.mu.Unlock()
	return len(s.g.pending)
}
