package secret

import (
	"bytes"
	"context"
	"encoding"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
)

// MinRedactLen is the shortest value a Redactor scrubs. Shorter strings
// ("1234", "admin", "true") occur by chance in ordinary log text, so
// scrubbing them would redact innocent words and numbers and make logs
// useless, while giving no protection worth having: a secret that short can
// be guessed. rotator's providers never mint them (they produce at least 16
// characters), so only a hand-fed value can be shorter.
const MinRedactLen = 8

// Redactor remembers the secret values alive in the process and scrubs them
// from text. It is safe for concurrent use; its zero value is ready to use
// and must not be copied after first use.
//
// Scrub is called on every log record string, so it is built for that:
// with nothing registered it returns at once; otherwise it slides an 8-byte
// window over the text, rejects almost every position with one probe of an
// 8 KiB bitmap, and confirms candidates against the values sharing that
// 8-byte prefix. Its cost grows with the text, not with the number of
// registered values, and overlapping matches are all covered.
//
// Register and Forget only update the set of values; the matcher is rebuilt
// by the first Scrub after a change, so a process that handles thousands of
// values a second (the engine registers every value it opens, for the
// duration of a run) and logs rarely does not rebuild it for each one.
type Redactor struct {
	mu     sync.Mutex
	counts map[string]int          // registered value -> registrations; guarded by mu
	m      atomic.Pointer[matcher] // immutable snapshot of counts (when not stale); nil when empty
	stale  atomic.Bool             // counts changed since m was built; set under mu
}

// Register makes r scrub v until it is forgotten as many times as it was
// registered. Values shorter than MinRedactLen are ignored (see there).
func (r *Redactor) Register(v Value) {
	if v.Len() < MinRedactLen {
		return
	}
	s := v.RevealString()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts == nil {
		r.counts = make(map[string]int)
	}
	r.counts[s]++
	if r.counts[s] == 1 {
		r.stale.Store(true)
	}
}

// Forget undoes one Register of v.
func (r *Redactor) Forget(v Value) {
	if v.Len() < MinRedactLen {
		return
	}
	s := v.RevealString()
	r.mu.Lock()
	defer r.mu.Unlock()
	n, ok := r.counts[s]
	if !ok {
		return
	}
	if n > 1 {
		r.counts[s] = n - 1
		return
	}
	delete(r.counts, s)
	if len(r.counts) == 0 {
		r.m.Store(nil)
		r.stale.Store(false)
		return
	}
	r.stale.Store(true)
}

// current returns the matcher of the values registered now, rebuilding it
// if they changed since it was built; nil when there are none.
func (r *Redactor) current() *matcher {
	if r.stale.Load() {
		r.mu.Lock()
		if r.stale.Load() {
			r.rebuild()
			r.stale.Store(false)
		}
		r.mu.Unlock()
	}
	return r.m.Load()
}

// rebuild publishes a new matcher for r.counts; r.mu must be held.
func (r *Redactor) rebuild() {
	if len(r.counts) == 0 {
		r.m.Store(nil)
		return
	}
	m := &matcher{byPrefix: make(map[uint64][]string, len(r.counts))}
	for s := range r.counts {
		w := load64(s)
		h := bitmapHash(w)
		m.bitmap[h>>6] |= 1 << (h & 63)
		m.byPrefix[w] = append(m.byPrefix[w], s)
		m.maxLen = max(m.maxLen, len(s))
		m.all = append(m.all, s)
		if strings.Contains(s, "\n") {
			m.multiline = append(m.multiline, s)
		}
	}
	r.m.Store(m)
}

// Scrub returns s with every occurrence of every registered value replaced
// by "[REDACTED]". Overlapping or adjacent occurrences become one marker.
func (r *Redactor) Scrub(s string) string {
	m := r.current()
	if m == nil || len(s) < MinRedactLen {
		return s
	}
	var (
		b          strings.Builder
		last       int // s[:last] has been written to b
		start, end = -1, -1
	)
	m.find(s, func(i, j int) {
		if i <= end { // overlaps or touches the current span
			end = max(end, j)
			return
		}
		if start >= 0 {
			b.WriteString(s[last:start])
			b.WriteString(Redacted)
			last = end
		}
		start, end = i, j
	})
	if start < 0 {
		return s
	}
	b.WriteString(s[last:start])
	b.WriteString(Redacted)
	b.WriteString(s[end:])
	return b.String()
}

// matcher is an immutable index of the registered values, all at least
// MinRedactLen (8) bytes long.
type matcher struct {
	bitmap    [1 << 16 / 64]uint64 // bit bitmapHash(prefix) set for every value's 8-byte prefix
	byPrefix  map[uint64][]string  // 8-byte prefix -> values starting with it
	all       []string             // every value
	multiline []string             // the values containing a newline
	maxLen    int                  // length of the longest value
}

// find calls fn(i, j) for every occurrence s[i:j] of a registered value, in
// increasing order of i.
func (m *matcher) find(s string, fn func(i, j int)) {
	if len(s) < 8 {
		return
	}
	w := load64(s)
	for i := 0; ; i++ {
		if h := bitmapHash(w); m.bitmap[h>>6]&(1<<(h&63)) != 0 {
			end := -1
			for _, v := range m.byPrefix[w] {
				if len(v) > end-i && strings.HasPrefix(s[i:], v) {
					end = i + len(v)
				}
			}
			if end >= 0 {
				fn(i, end)
			}
		}
		if i+8 >= len(s) {
			return
		}
		w = w>>8 | uint64(s[i+8])<<56
	}
}

// load64 reads the first 8 bytes of s, little-endian.
func load64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}

// bitmapHash maps an 8-byte prefix to a bit of matcher.bitmap.
func bitmapHash(w uint64) uint64 { return (w * 0x9E3779B97F4A7C15) >> 48 }

// NewHandler returns a slog.Handler that passes every record to next after
// scrubbing it with r: the message, string attribute values, errors (by
// their Error text), and any other value whose text or JSON form contains a
// registered secret are scrubbed; the value of every attribute whose key
// IsSensitiveKey becomes "[REDACTED]" whatever it holds. Groups are
// followed, LogValuers resolved, and attributes given to WithAttrs are
// treated the same way (at the time WithAttrs is called: register a secret
// before handing it to Logger.With).
func NewHandler(next slog.Handler, r *Redactor) slog.Handler {
	return &handler{next: next, r: r}
}

type handler struct {
	next slog.Handler
	r    *Redactor
}

func (h *handler) Enabled(ctx context.Context, l slog.Level) bool { return h.next.Enabled(ctx, l) }

func (h *handler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, h.r.Scrub(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(h.scrubAttr(a))
		return true
	})
	return h.next.Handle(ctx, out)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	scrubbed := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		scrubbed[i] = h.scrubAttr(a)
	}
	return &handler{next: h.next.WithAttrs(scrubbed), r: h.r}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{next: h.next.WithGroup(name), r: h.r}
}

// scrubAttr returns a with its value redacted as NewHandler describes. An
// attribute that needs no change is returned as it is, keeping its kind.
func (h *handler) scrubAttr(a slog.Attr) slog.Attr {
	if IsSensitiveKey(a.Key) {
		return slog.String(a.Key, Redacted)
	}
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		return slog.String(a.Key, h.r.Scrub(v.String()))
	case slog.KindGroup:
		group := v.Group()
		out := make([]slog.Attr, len(group))
		for i, ga := range group {
			out[i] = h.scrubAttr(ga)
		}
		return slog.Attr{Key: a.Key, Value: slog.GroupValue(out...)}
	case slog.KindAny:
		if s, changed := h.scrubAny(v.Any()); changed {
			return slog.String(a.Key, s)
		}
		return slog.Attr{Key: a.Key, Value: v}
	default: // numbers, bools, durations, times: no registered secret fits
		return slog.Attr{Key: a.Key, Value: v}
	}
}

// scrubAny renders x the ways a downstream handler might (Error, MarshalText,
// %+v, JSON) and, if any rendering contains a registered secret, returns the
// scrubbed text of the first such rendering and true.
func (h *handler) scrubAny(x any) (string, bool) {
	if h.r.current() == nil {
		return "", false
	}
	var renderings []string
	switch x := x.(type) {
	case error:
		renderings = append(renderings, x.Error())
	case []byte:
		renderings = append(renderings, string(x))
	case encoding.TextMarshaler:
		if b, err := x.MarshalText(); err == nil {
			renderings = append(renderings, string(b))
		}
	}
	renderings = append(renderings, fmt.Sprintf("%+v", x))
	if b, err := json.Marshal(x); err == nil {
		renderings = append(renderings, string(b))
	}
	for _, s := range renderings {
		if scrubbed := h.r.Scrub(s); scrubbed != s {
			return scrubbed, true
		}
	}
	return "", false
}

// maxLineLen bounds what a ScrubWriter buffers while waiting for a newline.
const maxLineLen = 64 << 10

// Writer returns a writer that passes what is written to w, line by line,
// after scrubbing registered values from each line. Call Flush after the
// last Write to pass on a final line that has no newline.
func (r *Redactor) Writer(w io.Writer) *ScrubWriter { return &ScrubWriter{r: r, w: w} }

// ScrubWriter scrubs registered values from the lines written to it; see
// Redactor.Writer. It is safe for concurrent use.
type ScrubWriter struct {
	r   *Redactor
	w   io.Writer
	mu  sync.Mutex
	buf []byte
}

// Write buffers p and writes every completed line, scrubbed, to the
// underlying writer. It reports len(p) unless that writer fails. Text that
// may be the start of a registered value spanning lines (a PEM key) is held
// back until the value is complete or ruled out. A line longer than 64 KiB
// is passed on in pieces, cut so that no registered value straddles a cut.
func (sw *ScrubWriter) Write(p []byte) (int, error) {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	sw.buf = append(sw.buf, p...)
	n := bytes.LastIndexByte(sw.buf, '\n') + 1
	m := sw.r.current()
	if m != nil {
		pending := m.multiline
		if n == 0 && len(sw.buf) > maxLineLen {
			n, pending = len(sw.buf), m.all
		}
		if n > 0 {
			n = m.safeCut(string(sw.buf), n, pending)
		}
	} else if n == 0 && len(sw.buf) > maxLineLen {
		n = len(sw.buf)
	}
	if n == 0 {
		return len(p), nil
	}
	if err := sw.emit(n); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes what is buffered, scrubbed, to the underlying writer.
func (sw *ScrubWriter) Flush() error {
	sw.mu.Lock()
	defer sw.mu.Unlock()
	if len(sw.buf) == 0 {
		return nil
	}
	return sw.emit(len(sw.buf))
}

// emit writes buf[:n] scrubbed and keeps the rest; sw.mu must be held.
func (sw *ScrubWriter) emit(n int) error {
	out := sw.r.Scrub(string(sw.buf[:n]))
	sw.buf = sw.buf[:copy(sw.buf, sw.buf[n:])]
	_, err := io.WriteString(sw.w, out)
	return err
}

// safeCut moves the cut c in s back so that s[:c] can be scrubbed on its
// own: before any tail of s that is a proper prefix of one of pending (a
// value still being written), and before any complete value crossing c.
func (m *matcher) safeCut(s string, c int, pending []string) int {
	if len(pending) > 0 {
	tail:
		for p := max(0, len(s)-(m.maxLen-1)); p < c; p++ {
			for _, v := range pending {
				if len(v) > len(s)-p && strings.HasPrefix(v, s[p:]) {
					c = p
					break tail
				}
			}
		}
	}
	var spans [][2]int
	m.find(s, func(i, j int) { spans = append(spans, [2]int{i, j}) })
	for k := len(spans) - 1; k >= 0; k-- {
		if spans[k][0] < c && c < spans[k][1] {
			c = spans[k][0]
		}
	}
	return c
}
