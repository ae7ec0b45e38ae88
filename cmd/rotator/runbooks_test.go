package main

import (
	"testing"
	"time"
)

func TestParseTimeFlag(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"30d":                       now.Add(-30 * 24 * time.Hour),
		"1d12h":                     now.Add(-36 * time.Hour),
		"2026-01-31":                time.Date(2026, 1, 31, 0, 0, 0, 0, time.UTC),
		"2026-01-31T10:00:00Z":      time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC),
		"2026-01-31T12:00:00+02:00": time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC),
	} {
		got, err := parseTimeFlag("--since", in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseTimeFlag(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"", "yesterday", "-3d", "2026-13-01"} {
		if _, err := parseTimeFlag("--since", bad, now); err == nil {
			t.Errorf("parseTimeFlag(%q) accepted it", bad)
		}
	}
}
