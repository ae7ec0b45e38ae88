package api

// WatchPolls returns how many store queries the watch poller has made.
func WatchPolls(s *Server) int64 { return s.hub.polls.Load() }

// WatchWaiters returns how many long polls wait on credential id.
func WatchWaiters(s *Server, id string) int {
	s.hub.mu.Lock()
	defer s.hub.mu.Unlock()
	if e, ok := s.hub.watched[id]; ok {
		return e.waiters
	}
	return 0
}

// CredentialCursor returns the cursor of a page of credentials starting
// after id.
func CredentialCursor(after string) string {
	return *cursor{Kind: "credentials", After: after}.encode()
}

// RecorderStats returns how many transactions the audit recorder ran, how
// many events they held and how many credential queries checks made.
func RecorderStats(s *Server) (txs, events, reads int64) {
	return s.rec.txs.Load(), s.rec.events.Load(), s.rec.reads.Load()
}

// ListCacheCold reports whether the list cache reads pages whole, without
// asking for their stamps first (listCache.cold).
func ListCacheCold(s *Server) bool { return s.lists.cold.Load() }
