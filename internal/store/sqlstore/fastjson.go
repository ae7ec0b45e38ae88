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
	i, empty, ok := openFlat(b, '[', ']')
	if !ok || empty {
		return []string{}, ok
	}
	for {
		s, j, ok := scanPlainString(b, i)
		if !ok {
			return nil, false
		}
		out = append(out, s)
		var end bool
		if i, end, ok = afterFlatValue(b, j, ']'); !ok || end {
			return out, ok
		}
	}
}

// scanFlatStringMap reads a JSON object whose values are all plain
// strings. A repeated key keeps its last value, as encoding/json does.
func scanFlatStringMap(b []byte) (out map[string]string, ok bool) {
	i, empty, ok := openFlat(b, '{', '}')
	if !ok || empty {
		return map[string]string{}, ok
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
		var end bool
		if i, end, ok = afterFlatValue(b, j, '}'); !ok || end {
			return out, ok
		}
	}
}

// openFlat reads the opening bracket of b: it returns where the first
// value starts, or empty when the closing bracket follows (and ends b).
func openFlat(b []byte, opening, closing byte) (i int, empty, ok bool) {
	i = skipSpace(b, 0)
	if i >= len(b) || b[i] != opening {
		return 0, false, false
	}
	i = skipSpace(b, i+1)
	if i < len(b) && b[i] == closing {
		return 0, true, skipSpace(b, i+1) == len(b)
	}
	return i, false, true
}

// afterFlatValue reads what follows a value that ends at b[i]: a comma
// (it returns where the next value starts) or the closing bracket, which
// must end b (end).
func afterFlatValue(b []byte, i int, closing byte) (next int, end, ok bool) {
	i = skipSpace(b, i)
	switch {
	case i >= len(b):
		return 0, false, false
	case b[i] == ',':
		return skipSpace(b, i+1), false, true
	case b[i] == closing:
		return 0, true, skipSpace(b, i+1) == len(b)
	}
	return 0, false, false
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
