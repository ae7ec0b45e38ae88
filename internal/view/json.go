package view

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/rotatorhq/rotator/internal/jsonenc"
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
	b = jsonenc.AppendString(b, c.ID)
	b = append(b, `,"consumer":`...)
	b = jsonenc.AppendString(b, c.Consumer)
	b = append(b, `,"provider":`...)
	b = jsonenc.AppendString(b, c.Provider)
	b = append(b, `,"scope":`...)
	b = jsonenc.AppendStrings(b, c.Scope)
	b = append(b, `,"granted_scope":`...)
	b = jsonenc.AppendStrings(b, c.GrantedScope)
	b = append(b, `,"granted_scope_reported":`...)
	b = strconv.AppendBool(b, c.GrantedScopeReported)
	b = append(b, `,"owner":`...)
	b = jsonenc.AppendString(b, c.Owner)
	b = append(b, `,"labels":`...)
	b = jsonenc.AppendStringMap(b, c.Labels)
	b = append(b, `,"status":`...)
	b = jsonenc.AppendString(b, c.Status)
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
		b = jsonenc.AppendString(b, v.ID)
		if v.Stage != "" {
			b = append(b, `,"stage":`...)
			b = jsonenc.AppendString(b, v.Stage)
		}
		b = append(b, `,"fingerprint":`...)
		b = jsonenc.AppendString(b, v.Fingerprint)
		b = append(b, `,"created_at":`...)
		if b, err = jsonenc.AppendTime(b, v.CreatedAt); err != nil {
			return b, err
		}
		b = append(b, `,"expires_at":`...)
		if b, err = appendTimePtr(b, v.ExpiresAt); err != nil {
			return b, err
		}
		if v.SHA256 != "" {
			b = append(b, `,"sha256":`...)
			b = jsonenc.AppendString(b, v.SHA256)
		}
		b = append(b, '}')
	}
	b = append(b, `,"runbook":`...)
	b = jsonenc.AppendString(b, c.Runbook)
	return append(b, '}'), nil
}

func appendTimePtr(b []byte, t *time.Time) ([]byte, error) {
	if t == nil {
		return append(b, "null"...), nil
	}
	return jsonenc.AppendTime(b, *t)
}
