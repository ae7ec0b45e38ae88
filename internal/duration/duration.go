// Package duration parses durations in Go syntax extended with a day unit
// ("30d", "1d12h"), as accepted everywhere in rotator's configuration and CLI.
package duration

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Parse parses a duration such as "90s", "15m", "1h30m", "30d" or "1d12h".
// Negative durations are rejected.
func Parse(s string) (time.Duration, error) {
	in := strings.TrimSpace(s)
	if in == "" {
		return 0, fmt.Errorf("empty duration; use a value such as 30s, 15m, 1h or 30d")
	}
	var days time.Duration
	if i := strings.IndexByte(in, 'd'); i >= 0 {
		n, err := strconv.ParseUint(in[:i], 10, 32)
		if err != nil {
			return 0, fmt.Errorf("invalid duration %q; use a value such as 30s, 15m, 1h or 30d", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		in = in[i+1:]
		if in == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(in)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("invalid duration %q; use a value such as 30s, 15m, 1h or 30d", s)
	}
	return days + d, nil
}

// Format renders d compactly, using days when d is a whole number of them.
func Format(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	if d%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
