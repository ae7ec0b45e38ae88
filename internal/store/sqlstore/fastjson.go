package sqlstore

import "unicode/utf8"

// The scope, labels and metadata columns are flat JSON: an array of
// strings or an object of strings, as json.Marshal (SQLite) or jsonb's
// output (Postgres: a space after each ':' and ',') writes them. Listing
// credentials decodes three of them per row, and encoding/json's reflective
// decoder was a quarter of a list request's CPU. The scanners below read
// exactly that shape, strings without escapes and of valid UTF-8; anything
// else (an escape, a nested value, a syntax error) makes them report
// !ok and the caller decodes with encoding/json, so the result, errors
// included, is always what encoding/json gives.

// scanFlatStrings reads a JSON array of plain strings.
func scanFlatStrings(b []byte) (out []string, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '[' {
		return nil, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == ']' {
		return []string{}, skipSpace(b, i+1) == len(b)
	}
	for {
		s, j, ok := scanPlainString(b, i)
		if !ok {
			return nil, false
		}
		out = append(out, s)
		i = skipSpace(b, j)
		if i >= len(b) {
			return nil, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case ']':
			return out, skipSpace(b, i+1) == len(b)
		default:
			return nil, false
		}
	}
}

// scanFlatStringMap reads a JSON object whose values are all plain
// strings. A repeated key keeps its last value, as encoding/json does.
func scanFlatStringMap(b []byte) (out map[string]string, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return nil, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == '}' {
		return map[string]string{}, skipSpace(b, i+1) == len(b)
	}
	out = make(map[string]string, 4)
	for {
		k, j, ok := scanPlainString(b, i)
		if !ok {
			return nil, false
		}
		i = skipSpace(b, j)
		if i >= len(b) || b[i] != ':' {
			return nil, false
		}
		v, j, ok := scanPlainString(b, skipSpace(b, i+1))
		if !ok {
			return nil, false
		}
		out[k] = v
		i = skipSpace(b, j)
		if i >= len(b) {
			return nil, false
		}
		switch b[i] {
		case ',':
			i = skipSpace(b, i+1)
		case '}':
			return out, skipSpace(b, i+1) == len(b)
		default:
			return nil, false
		}
	}
}

// scanPlainString reads the string starting at b[i] ('"'), which must
// have no escape, no control character and only valid UTF-8; it returns
// the string and the index after its closing quote.
func scanPlainString(b []byte, i int) (string, int, bool) {
	if i >= len(b) || b[i] != '"' {
		return "", 0, false
	}
	ascii := true
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			s := b[i+1 : j]
			if !ascii && !utf8.Valid(s) {
				return "", 0, false
			}
			return string(s), j + 1, true
		case c == '\\' || c < 0x20:
			return "", 0, false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", 0, false
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}
