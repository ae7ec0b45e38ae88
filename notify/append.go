package notify

import (
	"encoding/json"
	"slices"
	"time"
	"unicode/utf8"
)

// The engine writes the events of every commit to the outbox as one JSON
// array (issue 12: the notification outbox on a rotation's critical path).
// encoding/json's reflective encoder was most of the cost of noting three
// events per rotation, so AppendEvents writes them by hand: the bytes are
// exactly json.Marshal's for each event (append_test.go compares them over
// varied events), so an event reads the same whichever wrote it.

// AppendEvents appends evs to dst as a JSON array, each element the bytes
// json.Marshal gives for it. It fails only where json.Marshal does (a time
// whose year is outside 0–9999), with json.Marshal's error.
func AppendEvents(dst []byte, evs ...Event) ([]byte, error) {
	dst = append(dst, '[')
	for i := range evs {
		if i > 0 {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = AppendEvent(dst, &evs[i]); err != nil {
			return nil, err
		}
	}
	return append(dst, ']'), nil
}

// AppendEvent appends ev to dst as json.Marshal encodes it.
func AppendEvent(dst []byte, ev *Event) ([]byte, error) {
	if y := ev.Time.Year(); y < 0 || y > 9999 {
		_, err := json.Marshal(ev) // json.Marshal's error, word for word
		return nil, err
	}
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, ev.ID)
	dst = append(dst, `,"kind":`...)
	dst = appendString(dst, string(ev.Kind))
	dst = append(dst, `,"time":"`...)
	dst = ev.Time.AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '"')
	dst = appendField(dst, `,"credential":`, ev.CredentialID)
	dst = appendField(dst, `,"consumer":`, ev.Consumer)
	if len(ev.Labels) > 0 {
		dst = append(dst, `,"labels":{`...)
		dst = appendSortedMap(dst, ev.Labels)
		dst = append(dst, '}')
	}
	dst = appendField(dst, `,"run_id":`, ev.RunID)
	dst = appendField(dst, `,"trigger":`, ev.Trigger)
	dst = appendVersion(dst, `,"old_version":`, ev.OldVersion)
	dst = appendVersion(dst, `,"new_version":`, ev.NewVersion)
	dst = appendField(dst, `,"reason":`, ev.Reason)
	dst = append(dst, `,"summary":`...)
	dst = appendString(dst, ev.Summary)
	dst = appendField(dst, `,"runbook":`, ev.Runbook)
	if l := ev.Links; l != nil {
		dst = append(dst, `,"links":{`...)
		mark := len(dst)
		dst = appendField(dst, `,"run":`, l.Run)
		dst = appendField(dst, `,"runbook":`, l.Runbook)
		if len(dst) > mark {
			dst = slices.Delete(dst, mark, mark+1) // the first field's comma
		}
		dst = append(dst, '}')
	}
	dst = appendField(dst, `,"phase":`, ev.Phase)
	if len(ev.Credentials) > 0 {
		dst = append(dst, `,"credentials":[`...)
		for i, c := range ev.Credentials {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendString(dst, c)
		}
		dst = append(dst, ']')
	}
	return append(dst, '}'), nil
}

// appendField appends an omitempty string field (name includes the comma,
// the quotes and the colon).
func appendField(dst []byte, name, v string) []byte {
	if v == "" {
		return dst
	}
	return appendString(append(dst, name...), v)
}

func appendVersion(dst []byte, name string, v *Version) []byte {
	if v == nil {
		return dst
	}
	dst = append(dst, name...)
	dst = append(dst, `{"id":`...)
	dst = appendString(dst, v.ID)
	dst = appendField(dst, `,"fingerprint":`, v.Fingerprint)
	return append(dst, '}')
}

// appendSortedMap appends the members of m, keys in byte order as
// json.Marshal sorts them.
func appendSortedMap(dst []byte, m map[string]string) []byte {
	var buf [8]string
	keys := buf[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = appendString(dst, k)
		dst = append(dst, ':')
		dst = appendString(dst, m[k])
	}
	return dst
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string the way json.Marshal does: HTML
// characters (<, >, &) and U+2028, U+2029 escaped as \u00XX / \u202X,
// control characters as \b \f \n \r \t or \u00XX, invalid UTF-8 as \ufffd.
func appendString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
