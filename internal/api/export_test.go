package api

// WatchPolls returns how many store queries the watch poller has made.
func WatchPolls(s *Server) int64 { return s.hub.polls.Load() }
