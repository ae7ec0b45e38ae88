package secret

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"
)

// Canaries registered with the Redactor under test; none may reach output.
const (
	redactCanary  = "canary-Pq4Wm7Zs2Xk9Rb5Nc8Jt3Lf6"
	redactCanary2 = "canary2-Gd1Hv6Ty3Ue8Io5Pa2Sl9Kz"
)

func TestRedactorScrub(t *testing.T) {
	t.Parallel()

	tests := map[string]struct {
		values []string
		in     string
		want   string
	}{
		"nothing registered":   {in: "token " + redactCanary, want: "token " + redactCanary},
		"whole string":         {values: []string{redactCanary}, in: redactCanary, want: Redacted},
		"inside text":          {values: []string{redactCanary}, in: "a=" + redactCanary + ";b", want: "a=" + Redacted + ";b"},
		"every occurrence":     {values: []string{redactCanary}, in: redactCanary + " " + redactCanary + redactCanary, want: Redacted + " " + Redacted},
		"two values":           {values: []string{redactCanary, redactCanary2}, in: "x" + redactCanary2 + "y" + redactCanary, want: "x" + Redacted + "y" + Redacted},
		"no match":             {values: []string{redactCanary}, in: "canary-Pq4Wm7Zs2Xk9Rb5Nc8Jt3L", want: "canary-Pq4Wm7Zs2Xk9Rb5Nc8Jt3L"},
		"shorter than 8":       {values: []string{"hunter2"}, in: "pw hunter2", want: "pw hunter2"},
		"exactly 8":            {values: []string{"abcdefgh"}, in: "xabcdefghx", want: "x" + Redacted + "x"},
		"prefix of another":    {values: []string{"abcdefgh", "abcdefgh-longer"}, in: "abcdefgh-longer!", want: Redacted + "!"},
		"same 8-byte prefix":   {values: []string{"prefix00-one", "prefix00-two"}, in: "prefix00-two prefix00-one prefix00-thr", want: Redacted + " " + Redacted + " prefix00-thr"},
		"overlapping values":   {values: []string{"AAAABBBBCC", "BBBBCCDDDDEE"}, in: "<AAAABBBBCCDDDDEE>", want: "<" + Redacted + ">"},
		"contained value":      {values: []string{"xx-inner-value-yy", "inner-value"}, in: "1 inner-value 2 xx-inner-value-yy", want: "1 " + Redacted + " 2 " + Redacted},
		"multi-line value":     {values: []string{"-----BEGIN KEY-----\nMIIabc\n-----END KEY-----"}, in: "k: -----BEGIN KEY-----\nMIIabc\n-----END KEY-----\n", want: "k: " + Redacted + "\n"},
		"empty input":          {values: []string{redactCanary}, in: "", want: ""},
		"input shorter than 8": {values: []string{redactCanary}, in: "short", want: "short"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var r Redactor
			for _, v := range tt.values {
				r.Register(NewString(v))
			}
			if got := r.Scrub(tt.in); got != tt.want {
				t.Fatalf("Scrub(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRedactorForget(t *testing.T) {
	t.Parallel()

	var r Redactor
	v := NewString(redactCanary)
	in := "x " + redactCanary
	r.Register(v)
	r.Register(v)
	r.Register(NewString(redactCanary2))
	r.Forget(v)
	if got := r.Scrub(in); got != "x "+Redacted {
		t.Fatalf("after one of two Forgets: %q, want still scrubbed", got)
	}
	r.Forget(v)
	if got := r.Scrub(in); got != in {
		t.Fatalf("after both Forgets: %q, want %q", got, in)
	}
	if got := r.Scrub(redactCanary2); got != Redacted {
		t.Fatalf("other value no longer scrubbed: %q", got)
	}
	r.Forget(NewString(redactCanary2))
	r.Forget(NewString("never-registered"))
	r.Forget(NewString("short"))
	if r.m.Load() != nil {
		t.Fatal("matcher not cleared when the last value is forgotten")
	}
}

// TestRedactorScrubRandom compares Scrub with the obvious specification on
// random text over a tiny alphabet, where values overlap all the time.
func TestRedactorScrubRandom(t *testing.T) {
	t.Parallel()

	rng := rand.New(rand.NewPCG(1, 2))
	randString := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = "xyz"[rng.IntN(3)]
		}
		return string(b)
	}
	for iter := range 2000 {
		var r Redactor
		values := make([]string, 1+rng.IntN(4))
		for i := range values {
			values[i] = randString(8 + rng.IntN(5))
			r.Register(NewString(values[i]))
		}
		in := randString(rng.IntN(80))
		if rng.IntN(2) == 0 {
			v := values[rng.IntN(len(values))]
			at := rng.IntN(len(in) + 1)
			in = in[:at] + v + in[at:]
		}
		got := r.Scrub(in)
		// Specification: mark every byte covered by an occurrence, then
		// replace each maximal run of marked bytes with the marker.
		covered := make([]bool, len(in))
		for _, v := range values {
			for i := 0; i+len(v) <= len(in); i++ {
				if in[i:i+len(v)] == v {
					for j := i; j < i+len(v); j++ {
						covered[j] = true
					}
				}
			}
		}
		var want strings.Builder
		for i := 0; i < len(in); i++ {
			if !covered[i] {
				want.WriteByte(in[i])
				continue
			}
			want.WriteString(Redacted)
			for i+1 < len(in) && covered[i+1] {
				i++
			}
		}
		if got != want.String() {
			t.Fatalf("iteration %d: values %q, Scrub(%q) = %q, want %q", iter, values, in, got, want.String())
		}
	}
}

func TestRedactorConcurrent(t *testing.T) {
	t.Parallel()

	var r Redactor
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			v := NewString(fmt.Sprintf("%s-%d", redactCanary, i))
			for range 200 {
				r.Register(v)
				if got := r.Scrub("x " + v.RevealString() + " y"); got != "x "+Redacted+" y" {
					t.Errorf("registered value not scrubbed: %q", got)
					return
				}
				r.Forget(v)
			}
		})
	}
	wg.Wait()
}

// logSetup returns a logger through NewHandler into a JSON handler, and the
// buffer it writes to.
func logSetup(t *testing.T) (*slog.Logger, *bytes.Buffer, *Redactor) {
	t.Helper()
	var (
		buf bytes.Buffer
		r   Redactor
	)
	r.Register(NewString(redactCanary))
	r.Register(NewString(redactCanary2))
	h := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	return slog.New(NewHandler(h, &r)), &buf, &r
}

// assertNoCanary fails if out holds a canary in any form a handler might
// write it.
func assertNoCanary(t *testing.T, out string) {
	t.Helper()
	for _, c := range []string{redactCanary, redactCanary2, "Pq4Wm7Zs2Xk9", "Gd1Hv6Ty3Ue8"} {
		if strings.Contains(out, c) {
			t.Fatalf("log output leaks a secret:\n%s", out)
		}
	}
}

// tokenLogValuer logs a secret through LogValue.
type tokenLogValuer struct{ s string }

func (v tokenLogValuer) LogValue() slog.Value { return slog.StringValue("token=" + v.s) }

// logConfig has a secret in a field and behind a pointer: %+v prints the
// pointer's address, JSON follows it.
type logConfig struct {
	Name  string
	Inner *innerConfig
}

type innerConfig struct{ Header string }

func TestHandlerScrubs(t *testing.T) {
	t.Parallel()

	tests := map[string]func(l *slog.Logger){
		"message": func(l *slog.Logger) { l.Info("got token " + redactCanary) },
		"string attr": func(l *slog.Logger) {
			l.Info("call", "url", "https://api.example.com/?access="+redactCanary)
		},
		"nested groups": func(l *slog.Logger) {
			l.Info("call", slog.Group("req", slog.String("body", redactCanary), slog.Group("inner", "x", redactCanary2)))
		},
		"inline group": func(l *slog.Logger) {
			l.Info("call", slog.Group("", slog.String("body", redactCanary)))
		},
		"error": func(l *slog.Logger) {
			l.Error("failed", "err", fmt.Errorf("provider said: bad key %s: %w", redactCanary, errors.New("denied")))
		},
		"error under another key": func(l *slog.Logger) {
			l.Error("failed", slog.Any("cause", errors.New("echo "+redactCanary)))
		},
		"with attrs": func(l *slog.Logger) {
			l.With("cmd", "curl -H 'X: "+redactCanary+"'", slog.Group("g", "v", redactCanary2)).Info("run")
		},
		"with group then attrs": func(l *slog.Logger) {
			l.WithGroup("plugin").With("arg", redactCanary).WithGroup("call").Info("m", "out", redactCanary2)
		},
		"log valuer": func(l *slog.Logger) { l.Info("m", "v", tokenLogValuer{redactCanary}) },
		"bytes":      func(l *slog.Logger) { l.Info("m", "body", []byte(`{"t":"`+redactCanary+`"}`)) },
		"struct with pointer": func(l *slog.Logger) {
			l.Info("m", "cfg", &logConfig{Name: "n", Inner: &innerConfig{Header: redactCanary}})
		},
		"string slice": func(l *slog.Logger) { l.Info("m", "args", []string{"--x", redactCanary}) },
		"stringer": func(l *slog.Logger) {
			l.Info("m", "s", time.Duration(0), "who", fmt.Stringer(stringer(redactCanary2)))
		},
		"secret value": func(l *slog.Logger) { l.Info("m", "v", NewString(redactCanary)) },
		"secret value in struct": func(l *slog.Logger) {
			l.Info("m", "out", struct{ Value Value }{NewString(redactCanary)})
		},
	}
	for name, logFn := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			l, buf, _ := logSetup(t)
			logFn(l)
			if buf.Len() == 0 {
				t.Fatal("nothing logged")
			}
			assertNoCanary(t, buf.String())
			if !strings.Contains(buf.String(), Redacted) {
				t.Fatalf("no redaction marker in:\n%s", buf)
			}
			var rec map[string]any
			if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
				t.Fatalf("output is no longer one JSON record: %v\n%s", err, buf)
			}
		})
	}
	t.Run("text handler", func(t *testing.T) {
		t.Parallel()
		var (
			buf bytes.Buffer
			r   Redactor
		)
		r.Register(NewString(redactCanary))
		l := slog.New(NewHandler(slog.NewTextHandler(&buf, nil), &r))
		l.With("a", redactCanary).WithGroup("g").Info("msg "+redactCanary, "b", redactCanary, "err", errors.New(redactCanary),
			"cfg", &logConfig{Inner: &innerConfig{Header: redactCanary}})
		assertNoCanary(t, buf.String())
		if n := strings.Count(buf.String(), Redacted); n != 5 {
			t.Fatalf("%d redaction markers, want 5:\n%s", n, &buf)
		}
	})
}

// stringer is a fmt.Stringer holding text.
type stringer string

func (s stringer) String() string { return string(s) }

func TestHandlerSensitiveKeys(t *testing.T) {
	t.Parallel()

	l, buf, _ := logSetup(t)
	// Unregistered values: only the key names say they are secret.
	l.With("client_secret", "with-attrs-value").Info("m",
		"authorization", "Bearer unregistered-token-1",
		"client_secret", "unregistered-2",
		"api_key", "unregistered-3",
		"Password", "unregistered-4",
		"cookie", "session=unregistered-5",
		"X-Api-Key", 12345678,
		slog.Group("headers", "Authorization", "Basic unregistered-6", "accept", "application/json"),
		slog.Group("token", "kind", "unregistered-7"),
		"provider", "github",
		"key_id", "0123456789abcdef",
		"count", 3,
		"url", "https://example.com/x",
	)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"authorization", "client_secret", "api_key", "Password", "cookie", "X-Api-Key", "token"} {
		if rec[key] != Redacted {
			t.Errorf("%s = %v, want %s", key, rec[key], Redacted)
		}
	}
	headers, _ := rec["headers"].(map[string]any)
	if headers["Authorization"] != Redacted || headers["accept"] != "application/json" {
		t.Errorf("headers = %v, want Authorization redacted and accept kept", headers)
	}
	want := map[string]any{"provider": "github", "key_id": "0123456789abcdef", "count": float64(3), "url": "https://example.com/x", "msg": "m"}
	for k, v := range want {
		if rec[k] != v {
			t.Errorf("%s = %v, want it untouched (%v)", k, rec[k], v)
		}
	}
	if strings.Contains(buf.String(), "unregistered-") || strings.Contains(buf.String(), "with-attrs-value") {
		t.Fatalf("a sensitive attribute leaked:\n%s", buf)
	}
}

func TestHandlerKeepsCleanAttrs(t *testing.T) {
	t.Parallel()

	l, buf, _ := logSetup(t)
	err := errors.New("connection refused")
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	l.Info("m", "err", err, "d", time.Second, "at", at, "ok", true, "n", 7, "list", []int{1, 2}, "cfg", &logConfig{Name: "x"})
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil {
		t.Fatal(err)
	}
	cfg, _ := rec["cfg"].(map[string]any)
	if rec["err"] != "connection refused" || rec["d"] != float64(time.Second) || rec["at"] != "2026-01-02T03:04:05Z" ||
		rec["ok"] != true || rec["n"] != float64(7) || cfg["Name"] != "x" {
		t.Fatalf("clean attributes changed: %s", buf)
	}
	if _, isList := rec["list"].([]any); !isList {
		t.Fatalf("a clean []int lost its JSON form: %s", buf)
	}
}

func TestHandlerEnabledAndSource(t *testing.T) {
	t.Parallel()

	var (
		buf bytes.Buffer
		r   Redactor
	)
	h := NewHandler(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn, AddSource: true}), &r)
	if h.Enabled(context.Background(), slog.LevelInfo) || !h.Enabled(context.Background(), slog.LevelWarn) {
		t.Fatal("Enabled does not follow the wrapped handler")
	}
	slog.New(h).Warn("w")
	if !strings.Contains(buf.String(), "redact_test.go") {
		t.Fatalf("source location lost: %s", &buf)
	}
}

func TestScrubWriter(t *testing.T) {
	t.Parallel()

	setup := func(t *testing.T, values ...string) (*ScrubWriter, *bytes.Buffer) {
		t.Helper()
		var (
			out bytes.Buffer
			r   Redactor
		)
		for _, v := range values {
			r.Register(NewString(v))
		}
		return r.Writer(&out), &out
	}
	write := func(t *testing.T, w *ScrubWriter, chunks ...string) {
		t.Helper()
		for _, c := range chunks {
			n, err := w.Write([]byte(c))
			if err != nil || n != len(c) {
				t.Fatalf("Write = (%d, %v), want (%d, nil)", n, err, len(c))
			}
		}
	}

	t.Run("lines split across writes", func(t *testing.T) {
		t.Parallel()
		w, out := setup(t, redactCanary)
		write(t, w, "first "+redactCanary[:10], redactCanary[10:]+" done\nsecond ", redactCanary[:5])
		if got := out.String(); got != "first "+Redacted+" done\n" {
			t.Fatalf("after the writes: %q", got)
		}
		write(t, w, redactCanary[5:])
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if got, want := out.String(), "first "+Redacted+" done\nsecond "+Redacted; got != want {
			t.Fatalf("after Flush: %q, want %q", got, want)
		}
		if err := w.Flush(); err != nil || out.String() != "first "+Redacted+" done\nsecond "+Redacted {
			t.Fatal("a second Flush changed the output")
		}
	})
	t.Run("nothing registered passes through", func(t *testing.T) {
		t.Parallel()
		w, out := setup(t)
		write(t, w, "a\nb", "c\n", "tail")
		if out.String() != "a\nbc\n" {
			t.Fatalf("got %q", out.String())
		}
		_ = w.Flush()
		if out.String() != "a\nbc\ntail" {
			t.Fatalf("got %q", out.String())
		}
	})
	t.Run("multi-line value held back", func(t *testing.T) {
		t.Parallel()
		pem := "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
		w, out := setup(t, pem)
		lines := strings.SplitAfter("log before\n"+pem+"\nlog after\n", "\n")
		write(t, w, lines...)
		_ = w.Flush()
		if got, want := out.String(), "log before\n"+Redacted+"\nlog after\n"; got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	})
	t.Run("partial multi-line prefix released", func(t *testing.T) {
		t.Parallel()
		pem := "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
		w, out := setup(t, pem)
		write(t, w, "-----BEGIN PRIVATE KEY-----\n")
		if out.Len() != 0 {
			t.Fatalf("a possible start of the value was passed on: %q", out.String())
		}
		write(t, w, "not the key\n")
		if got := out.String(); got != "-----BEGIN PRIVATE KEY-----\nnot the key\n" {
			t.Fatalf("got %q once the value was ruled out", got)
		}
	})
	t.Run("long line cut safely", func(t *testing.T) {
		t.Parallel()
		w, out := setup(t, redactCanary)
		filler := strings.Repeat("f", maxLineLen-5)
		// The canary straddles the 64 KiB point and arrives in two writes.
		write(t, w, filler+redactCanary[:12])
		write(t, w, redactCanary[12:]+strings.Repeat("g", 100))
		_ = w.Flush()
		want := filler + Redacted + strings.Repeat("g", 100)
		if got := out.String(); got != want {
			assertNoCanary(t, got)
			t.Fatalf("got %d bytes, want %d", len(got), len(want))
		}
		if len(w.buf) != 0 {
			t.Fatal("buffer not drained")
		}
	})
	t.Run("long line without values", func(t *testing.T) {
		t.Parallel()
		w, out := setup(t)
		write(t, w, strings.Repeat("x", maxLineLen+1))
		if out.Len() != maxLineLen+1 {
			t.Fatalf("over-long line buffered (%d bytes out)", out.Len())
		}
	})
	t.Run("write error", func(t *testing.T) {
		t.Parallel()
		var r Redactor
		w := r.Writer(failWriter{})
		if _, err := w.Write([]byte("line\n")); err == nil {
			t.Fatal("underlying write error lost")
		}
	})
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("disk full") }

func BenchmarkScrub(b *testing.B) {
	line := "level=INFO msg=\"rotated credential\" credential=github-mcp version=01JABCDEF provider=github fingerprint=0123456789abcdef duration=1.2s"
	for _, n := range []int{0, 1, 100, 10000} {
		b.Run(fmt.Sprint(n, " values"), func(b *testing.B) {
			var r Redactor
			for i := range n {
				r.Register(NewString(fmt.Sprintf("secret-%08d-%s", i, redactCanary)))
			}
			b.SetBytes(int64(len(line)))
			for b.Loop() {
				_ = r.Scrub(line)
			}
		})
	}
}
