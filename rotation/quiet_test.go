package rotation

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestQuietRepeats: while the database is down, River logs one error per
// fetch (every 100 ms); the service's log gets the first, then one line a
// window that says how many it held back.
func TestQuietRepeats(t *testing.T) {
	var buf bytes.Buffer
	now := time.Date(2026, 12, 6, 4, 42, 0, 0, time.UTC)
	q := newQuietRepeats(slog.NewJSONHandler(&buf, nil), 30*time.Second)
	q.shared.now = func() time.Time { return now }
	log := slog.New(minLevel{h: q, min: slog.LevelWarn}).With(slog.String("component", "river"))

	for range 150 { // 15 s of an outage
		log.Error("producer: Error fetching jobs", slog.String("queue", "rotation"), slog.String("err", "connection refused"))
		log.Warn("another message")
		log.Info("below the level")
		now = now.Add(100 * time.Millisecond)
	}
	now = now.Add(20 * time.Second) // 35 s after the first
	log.Error("producer: Error fetching jobs", slog.String("queue", "scheduler"), slog.String("err", "connection refused"))

	var lines []map[string]any
	for l := range strings.SplitSeq(strings.TrimSpace(buf.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		lines = append(lines, m)
	}
	if len(lines) != 3 {
		t.Fatalf("%d lines, want 3 (first error, first warning, the error after the window):\n%s", len(lines), buf.String())
	}
	if lines[0]["msg"] != "producer: Error fetching jobs" || lines[0]["repeated"] != nil || lines[0]["component"] != "river" {
		t.Errorf("first line: %v", lines[0])
	}
	if lines[1]["msg"] != "another message" || lines[1]["repeated"] != nil {
		t.Errorf("second line: %v", lines[1])
	}
	if lines[2]["repeated"] != float64(149) || lines[2]["queue"] != "scheduler" || lines[2]["repeated_within"] == nil {
		t.Errorf("line after the window: %v, want repeated 149 and its own attributes", lines[2])
	}
}
