package view

import (
	"encoding/json"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// AppendJSON appends c as json.Marshal encodes it, byte for byte, without
// reflection: GET /v1/credentials encodes a hundred of them per request,
// and encoding/json's reflective encoder (with a validation pass over each
// time.Time's MarshalJSON) was a fifth of the request's CPU. A credential
// carrying a field only `credentials show` fills (policy, targets,
// capabilities, versions) is left to json.Marshal. TestAppendJSONIsMarshal
// holds it to json.Marshal's output.
func (c *Credential) AppendJSON(b []byte) ([]byte, error) {
	if c.Schedule != "" || c.RenewBefore != 0 || c.GraceSeconds != 0 || len(c.Targets) > 0 || c.Capabilities != nil || len(c.Versions) > 0 {
		out, err := json.Marshal(c)
		return append(b, out...), err
	}
	b = append(b, `{"id":`...)
	b = appendString(b, c.ID)
	b = append(b, `,"consumer":`...)
	b = appendString(b, c.Consumer)
	b = append(b, `,"provider":`...)
	b = appendString(b, c.Provider)
	b = append(b, `,"scope":`...)
	b = appendStrings(b, c.Scope)
	b = append(b, `,"granted_scope":`...)
	b = appendStrings(b, c.GrantedScope)
	b = append(b, `,"granted_scope_reported":`...)
	b = strconv.AppendBool(b, c.GrantedScopeReported)
	b = append(b, `,"owner":`...)
	b = appendString(b, c.Owner)
	b = append(b, `,"labels":`...)
	b = appendStringMap(b, c.Labels)
	b = append(b, `,"status":`...)
	b = appendString(b, c.Status)
	b = append(b, `,"age_seconds":`...)
	if c.AgeSeconds == nil {
		b = append(b, "null"...)
	} else {
		b = strconv.AppendInt(b, *c.AgeSeconds, 10)
	}
	b = append(b, `,"max_age_seconds":`...)
	b = strconv.AppendInt(b, c.MaxAgeSeconds, 10)
	var err error
	b = append(b, `,"last_rotated_at":`...)
	if b, err = appendTimePtr(b, c.LastRotatedAt); err != nil {
		return b, err
	}
	b = append(b, `,"next_rotation_at":`...)
	if b, err = appendTimePtr(b, c.NextRotationAt); err != nil {
		return b, err
	}
	b = append(b, `,"expires_at":`...)
	if b, err = appendTimePtr(b, c.ExpiresAt); err != nil {
		return b, err
	}
	b = append(b, `,"current_version":`...)
	if v := c.CurrentVersion; v == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, `{"id":`...)
		b = appendString(b, v.ID)
		if v.Stage != "" {
			b = append(b, `,"stage":`...)
			b = appendString(b, v.Stage)
		}
		b = append(b, `,"fingerprint":`...)
		b = appendString(b, v.Fingerprint)
		b = append(b, `,"created_at":`...)
		if b, err = appendTime(b, v.CreatedAt); err != nil {
			return b, err
		}
		b = append(b, `,"expires_at":`...)
		if b, err = appendTimePtr(b, v.ExpiresAt); err != nil {
			return b, err
		}
		if v.SHA256 != "" {
			b = append(b, `,"sha256":`...)
			b = appendString(b, v.SHA256)
		}
		b = append(b, '}')
	}
	b = append(b, `,"runbook":`...)
	b = appendString(b, c.Runbook)
	return append(b, '}'), nil
}

// appendString appends s as encoding/json does: plain printable ASCII as
// is, anything needing an escape (quotes, control characters, <, >, &,
// U+2028, U+2029, invalid UTF-8) through json.Marshal.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= utf8.RuneSelf || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendStringMap appends m with its keys sorted, as encoding/json does.
func appendStringMap(b []byte, m map[string]string) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = appendString(b, m[k])
	}
	return append(b, '}')
}

func appendTimePtr(b []byte, t *time.Time) ([]byte, error) {
	if t == nil {
		return append(b, "null"...), nil
	}
	return appendTime(b, *t)
}

// appendTime appends t as time.Time's MarshalJSON does (RFC 3339 with
// nanoseconds, quoted), which refuses years outside 0–9999.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	if y := t.Year(); y < 0 || y > 9999 {
		q, err := t.MarshalJSON()
		return append(b, q...), err
	}
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"'), nil
}
