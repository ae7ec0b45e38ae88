package duration

import (
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	t.Parallel()
	good := map[string]time.Duration{
		"30s": 30 * time.Second, "15m": 15 * time.Minute, "1h30m": 90 * time.Minute,
		"30d": 30 * 24 * time.Hour, "1d12h": 36 * time.Hour, " 2h ": 2 * time.Hour, "0s": 0,
	}
	for in, want := range good {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "1x", "-5m", "1.5d", "abc", "5", "1d-1h"} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) succeeded; want an error", in)
		}
	}
}

func TestFormat(t *testing.T) {
	t.Parallel()
	cases := map[time.Duration]string{
		0: "0s", 30 * time.Second: "30s", 10 * time.Minute: "10m", time.Hour: "1h",
		90 * time.Minute: "1h30m", 48 * time.Hour: "2d", 90 * time.Second: "1m30s", 720 * time.Hour: "30d",
	}
	for in, want := range cases {
		if got := Format(in); got != want {
			t.Errorf("Format(%v) = %q; want %q", in, got, want)
		}
	}
}
