// Package audit makes rotator's audit log tamper-evident (DESIGN.md §4).
//
// The engine, apply and the CLI insert audit events without a hash, in the
// same transaction as the change they describe. A single Sealer (run on the
// leader) later gives committed events their place in a hash chain, in
// batches:
//
//	seq  = previous seq + 1
//	hash = hex(sha256(prev_hash || Canonical(event)))
//
// where prev_hash is the hex hash of the event at seq-1 (Genesis for seq 1).
// Chaining after commit means the chain never serializes the engine's
// transactions. Verify recomputes the chain and names the first event that
// was modified, deleted, inserted or moved.
//
// A hash chain proves that the stored history is consistent with itself. An
// attacker who can write the database and knows this algorithm can rewrite
// every hash after the event they change; to catch that, record the chain's
// head (Report.HeadSeq and Report.HeadHash) somewhere they cannot write
// (a ticket, a WORM bucket, a signed commit) and compare later: a rewritten
// history has a different hash at that seq. The same comparison detects a
// truncated log, which the chain alone cannot (docs/audit.md).
package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// Genesis is the prev_hash of the first event of the chain (seq 1).
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// CanonicalVersion names the canonical encoding; it is the first line of
// every canonical form, so a future encoding cannot collide with this one.
const CanonicalVersion = "rotator-audit-v1"

// Canonical returns the deterministic byte form of an event that its hash
// covers: the line "rotator-audit-v1", then one line per field, in this
// order, each written as name=<byte length>:<value>\n:
//
//	id             decimal insertion id
//	occurred_at    RFC 3339 UTC at microsecond precision (the stored
//	               precision), trailing zeros of the fraction dropped
//	               (time.RFC3339Nano)
//	actor, action, credential_id, run_id   as stored ("" when absent)
//	data           the JSON object re-encoded with sorted keys, no
//	               insignificant space and numbers as stored (see
//	               CanonicalJSON); "" when absent
//
// The length prefixes make the form unambiguous whatever the values
// contain. Seq, PrevHash, Hash and SealedAt are not part of it: the chain
// position is bound by PrevHash, which the hash covers.
//
// Canonical must be given an event as read back from the store: Postgres
// normalizes jsonb (key order, spacing, number forms) on write, and the
// sealer and Verify both hash what they read.
func Canonical(ev store.AuditEvent) ([]byte, error) {
	var b bytes.Buffer
	b.Grow(160 + len(ev.Actor) + len(ev.Action) + len(ev.CredentialID) + len(ev.RunID) + len(ev.Data))
	if err := appendCanonical(&b, ev); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

func appendCanonical(b *bytes.Buffer, ev store.AuditEvent) error {
	b.WriteString(CanonicalVersion)
	b.WriteByte('\n')
	var num [24]byte
	field(b, "id", strconv.AppendInt(num[:0], ev.ID, 10))
	var ts [40]byte
	field(b, "occurred_at", ev.OccurredAt.UTC().Truncate(time.Microsecond).AppendFormat(ts[:0], time.RFC3339Nano))
	fieldString(b, "actor", ev.Actor)
	fieldString(b, "action", ev.Action)
	fieldString(b, "credential_id", ev.CredentialID)
	fieldString(b, "run_id", ev.RunID)
	if len(bytes.TrimSpace(ev.Data)) == 0 {
		field(b, "data", nil)
		return nil
	}
	data, err := CanonicalJSON(ev.Data)
	if err != nil {
		return fmt.Errorf("audit event %d: data: %w", ev.ID, err)
	}
	field(b, "data", data)
	return nil
}

func field(b *bytes.Buffer, name string, value []byte) {
	var num [24]byte
	b.WriteString(name)
	b.WriteByte('=')
	b.Write(strconv.AppendInt(num[:0], int64(len(value)), 10))
	b.WriteByte(':')
	b.Write(value)
	b.WriteByte('\n')
}

func fieldString(b *bytes.Buffer, name, value string) {
	var num [24]byte
	b.WriteString(name)
	b.WriteByte('=')
	b.Write(strconv.AppendInt(num[:0], int64(len(value)), 10))
	b.WriteByte(':')
	b.WriteString(value)
	b.WriteByte('\n')
}

// Hash returns hex(sha256(prev || Canonical(ev))).
func Hash(prev string, ev store.AuditEvent) (string, error) {
	var h hasher
	return h.hash(prev, ev)
}

// hasher reuses its buffer between events (Verify and the sealer hash
// hundreds of thousands in a row).
type hasher struct {
	buf bytes.Buffer
	sum [sha256.Size]byte
	hex [2 * sha256.Size]byte
}

func (h *hasher) hash(prev string, ev store.AuditEvent) (string, error) {
	h.buf.Reset()
	h.buf.WriteString(prev)
	if err := appendCanonical(&h.buf, ev); err != nil {
		return "", err
	}
	h.sum = sha256.Sum256(h.buf.Bytes())
	hex.Encode(h.hex[:], h.sum[:])
	return string(h.hex[:]), nil
}

// CanonicalJSON re-encodes a JSON value deterministically: object keys
// sorted by their bytes (a repeated key keeps its last value, as Postgres
// jsonb does), no insignificant white space, strings escaped as Go's
// encoding/json escapes them with HTML escaping off, and numbers kept as
// written. It rejects anything but a single JSON value.
//
// Documents whose strings are printable ASCII without escapes (what rotator
// writes) take a fast path that copies them in a single pass; anything else
// is decoded and re-encoded with encoding/json. Both give the same bytes
// (FuzzCanonicalJSON checks it).
func CanonicalJSON(raw []byte) ([]byte, error) {
	p := fastJSON{in: raw}
	if out, ok := p.document(); ok {
		return out, nil
	}
	return referenceCanonicalJSON(raw)
}

// referenceCanonicalJSON is CanonicalJSON through encoding/json.
func referenceCanonicalJSON(raw []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("invalid JSON: more than one value")
	}
	var out bytes.Buffer
	out.Grow(len(raw))
	enc := json.NewEncoder(&out)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encoding JSON: %w", err)
	}
	return bytes.TrimSuffix(out.Bytes(), []byte("\n")), nil
}

// fastJSON canonicalizes documents whose strings need no escaping. Any
// input it does not handle (escapes, non-ASCII or control characters,
// invalid syntax) makes it give up (ok false), and CanonicalJSON falls back
// to encoding/json, which also words the syntax errors.
type fastJSON struct {
	in  []byte
	pos int
}

// span is one object member in the output: "key":value at out[from:to].
type span struct {
	key      []byte
	from, to int
}

func (p *fastJSON) document() ([]byte, bool) {
	out := make([]byte, 0, len(p.in))
	out, ok := p.value(out, 0)
	if !ok {
		return nil, false
	}
	p.space()
	return out, p.pos == len(p.in)
}

func (p *fastJSON) space() {
	for p.pos < len(p.in) {
		switch p.in[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

// maxDepth keeps the recursion bounded; deeper documents take the slow path.
const maxDepth = 64

func (p *fastJSON) value(out []byte, depth int) ([]byte, bool) {
	p.space()
	if p.pos >= len(p.in) || depth > maxDepth {
		return out, false
	}
	switch c := p.in[p.pos]; {
	case c == '{':
		return p.object(out, depth)
	case c == '[':
		p.pos++
		out = append(out, '[')
		p.space()
		if p.pos < len(p.in) && p.in[p.pos] == ']' {
			p.pos++
			return append(out, ']'), true
		}
		for {
			var ok bool
			if out, ok = p.value(out, depth+1); !ok {
				return out, false
			}
			p.space()
			if p.pos >= len(p.in) {
				return out, false
			}
			switch p.in[p.pos] {
			case ',':
				p.pos++
				out = append(out, ',')
			case ']':
				p.pos++
				return append(out, ']'), true
			default:
				return out, false
			}
		}
	case c == '"':
		s, ok := p.plainString()
		if !ok {
			return out, false
		}
		out = append(out, '"')
		out = append(out, s...)
		return append(out, '"'), true
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number(out)
	}
	for _, lit := range []string{"true", "false", "null"} {
		if bytes.HasPrefix(p.in[p.pos:], []byte(lit)) {
			p.pos += len(lit)
			return append(out, lit...), true
		}
	}
	return out, false
}

// plainString reads a string of printable ASCII without escapes and
// returns its content (which is also its canonical encoding).
func (p *fastJSON) plainString() ([]byte, bool) {
	start := p.pos + 1
	for i := start; i < len(p.in); i++ {
		switch c := p.in[i]; {
		case c == '"':
			p.pos = i + 1
			return p.in[start:i], true
		case c == '\\' || c < 0x20 || c >= 0x7f:
			return nil, false
		}
	}
	return nil, false
}

func (p *fastJSON) number(out []byte) ([]byte, bool) {
	in, i := p.in, p.pos
	digits := func() int {
		n := 0
		for i < len(in) && in[i] >= '0' && in[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if in[i] == '-' {
		i++
	}
	switch {
	case i < len(in) && in[i] == '0':
		i++
	case digits() == 0:
		return out, false
	}
	if i < len(in) && in[i] == '.' {
		i++
		if digits() == 0 {
			return out, false
		}
	}
	if i < len(in) && (in[i] == 'e' || in[i] == 'E') {
		i++
		if i < len(in) && (in[i] == '+' || in[i] == '-') {
			i++
		}
		if digits() == 0 {
			return out, false
		}
	}
	out = append(out, in[p.pos:i]...)
	p.pos = i
	return out, true
}

func (p *fastJSON) object(out []byte, depth int) ([]byte, bool) {
	p.pos++ // '{'
	out = append(out, '{')
	start := len(out)
	var buf [16]span
	members := buf[:0]
	sorted := true
	p.space()
	if p.pos < len(p.in) && p.in[p.pos] == '}' {
		p.pos++
		return append(out, '}'), true
	}
	for {
		p.space()
		if p.pos >= len(p.in) || p.in[p.pos] != '"' {
			return out, false
		}
		key, ok := p.plainString()
		if !ok {
			return out, false
		}
		p.space()
		if p.pos >= len(p.in) || p.in[p.pos] != ':' {
			return out, false
		}
		p.pos++
		if len(members) > 0 {
			out = append(out, ',')
			if bytes.Compare(members[len(members)-1].key, key) >= 0 {
				sorted = false
			}
		}
		from := len(out)
		out = append(out, '"')
		out = append(out, key...)
		out = append(out, '"', ':')
		if out, ok = p.value(out, depth+1); !ok {
			return out, false
		}
		members = append(members, span{key: key, from: from, to: len(out)})
		p.space()
		if p.pos >= len(p.in) {
			return out, false
		}
		switch p.in[p.pos] {
		case ',':
			p.pos++
			continue
		case '}':
			p.pos++
		default:
			return out, false
		}
		break
	}
	if sorted {
		return append(out, '}'), true
	}
	// Sort by key; of equal keys keep the last (stable sort, then keep the
	// last of each run).
	text := bytes.Clone(out[start:])
	for i := range members {
		members[i].from -= start
		members[i].to -= start
	}
	slices.SortStableFunc(members, func(a, b span) int { return bytes.Compare(a.key, b.key) })
	out = out[:start]
	for i, m := range members {
		if i+1 < len(members) && bytes.Equal(members[i+1].key, m.key) {
			continue
		}
		if len(out) > start {
			out = append(out, ',')
		}
		out = append(out, text[m.from:m.to]...)
	}
	return append(out, '}'), true
}
