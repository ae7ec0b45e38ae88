package delivery

// LocalPolls returns how many store queries a Local source's poller made.
func LocalPolls(l *Local) int64 { return l.poller.polls.Load() }

// LocalPolling reports whether a Local source's poller runs.
func LocalPolling(l *Local) bool {
	l.poller.mu.Lock()
	defer l.poller.mu.Unlock()
	return l.poller.stop != nil
}
