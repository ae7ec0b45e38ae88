package jsonenc_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/jsonenc"
)

var samples = []string{
	"", "plain", `quote " and \ backslash`, "<script>&amp;</script>", "tab\tnew\nline\rcr\bback\fform",
	"\x00\x01\x1f\x7f", "é ü 漢字 🔑", "\u2028\u2029", "bad \xff utf-8 \xc3", "end \xe2\x80",
}

func marshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestAppendIsMarshal(t *testing.T) {
	for _, s := range samples {
		if got, want := string(jsonenc.AppendString(nil, s)), marshal(t, s); got != want {
			t.Errorf("AppendString(%q) = %s, json.Marshal = %s", s, got, want)
		}
	}
	for _, ss := range [][]string{nil, {}, {"a"}, samples} {
		if got, want := string(jsonenc.AppendStrings(nil, ss)), marshal(t, ss); got != want {
			t.Errorf("AppendStrings(%q) = %s, json.Marshal = %s", ss, got, want)
		}
	}
	big := map[string]string{}
	for i, s := range samples {
		big[s] = samples[len(samples)-1-i]
	}
	for _, m := range []map[string]string{nil, {}, {"b": "2", "a": "1"}, big} {
		if got, want := string(jsonenc.AppendStringMap(nil, m)), marshal(t, m); got != want {
			t.Errorf("AppendStringMap(%q) = %s, json.Marshal = %s", m, got, want)
		}
	}
	for _, tm := range []time.Time{{}, time.Date(2026, 12, 5, 14, 0, 0, 123456789, time.UTC),
		time.Date(2026, 12, 5, 14, 0, 0, 0, time.FixedZone("x", 5*3600+1800))} {
		got, err := jsonenc.AppendTime(nil, tm)
		if err != nil {
			t.Fatal(err)
		}
		if want := marshal(t, tm); string(got) != want {
			t.Errorf("AppendTime(%v) = %s, json.Marshal = %s", tm, got, want)
		}
	}
	_, err := jsonenc.AppendTime(nil, time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))
	_, want := json.Marshal(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))
	// The error is time.Time's MarshalJSON's, which json.Marshal wraps.
	if err == nil || want == nil || !strings.HasSuffix(want.Error(), err.Error()) {
		t.Errorf("AppendTime of year 10000: error %v, json.Marshal's %v", err, want)
	}
}

func FuzzAppendString(f *testing.F) {
	for _, s := range samples {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := string(jsonenc.AppendString([]byte("x"), s)), "x"+marshal(t, s); got != want {
			t.Errorf("AppendString(%q) = %s, json.Marshal = %s", s, got, want)
		}
	})
}
