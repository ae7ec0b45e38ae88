package view

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"time"

	"github.com/rotatorhq/rotator/internal/jsonenc"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// AppendJSON appends c as json.Marshal encodes it, byte for byte, without
// reflection: GET /v1/credentials encodes a hundred of them per request,
// and encoding/json's reflective encoder (with a validation pass over each
// time.Time's MarshalJSON) was a fifth of the request's CPU. A credential
// carrying a field only `credentials show` fills (policy, targets,
// capabilities, versions) is left to json.Marshal. TestAppendJSONIsMarshal
// holds it to json.Marshal's output.
func (c *Credential) AppendJSON(b []byte) ([]byte, error) {
	if c.showFields() {
		out, err := json.Marshal(c)
		return append(b, out...), err
	}
	b = c.appendHead(b)
	b = appendStatusAge(b, c.Status, c.AgeSeconds)
	return c.appendTail(b)
}

// showFields reports whether c carries a field only `credentials show`
// fills, which the list encoders leave to json.Marshal or refuse.
func (c *Credential) showFields() bool {
	return c.Schedule != "" || c.RenewBefore != 0 || c.GraceSeconds != 0 || len(c.Targets) > 0 || c.Capabilities != nil || len(c.Versions) > 0
}

// appendHead appends the fields before status: the part of a listed
// credential's JSON from its opening brace to its labels.
func (c *Credential) appendHead(b []byte) []byte {
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
	return jsonenc.AppendStringMap(b, c.Labels)
}

// appendStatusAge appends the two fields that depend on the time of the
// listing.
func appendStatusAge(b []byte, status string, age *int64) []byte {
	b = append(b, `,"status":`...)
	b = jsonenc.AppendString(b, status)
	b = append(b, `,"age_seconds":`...)
	if age == nil {
		return append(b, "null"...)
	}
	return strconv.AppendInt(b, *age, 10)
}

// appendTail appends the fields after age_seconds and the closing brace.
func (c *Credential) appendTail(b []byte) ([]byte, error) {
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

// Listed is a credential as a list shows it (NewCredential), encoded
// ahead but for the two fields that depend on the time of the listing,
// status and age_seconds: a long-lived list (GET /v1/credentials) keeps
// one per credential and writes a page by copying. It holds no pointer
// into the store.Credential it was made from.
type Listed struct {
	id         string
	head, tail []byte
	state      store.CredentialState
	current    bool
	issued     time.Time
}

// NewListed encodes c as NewCredential(c, now).AppendJSON would, at any
// now.
func NewListed(c store.Credential) (*Listed, error) {
	v := NewCredential(c, time.Time{})
	if v.showFields() {
		return nil, errors.New("view: a listed credential carries fields only show fills")
	}
	l := &Listed{id: c.ID, head: v.appendHead(nil), state: c.State, current: c.Current != nil}
	if c.Current != nil {
		l.issued = issued(*c.Current)
	}
	var err error
	if l.tail, err = v.appendTail(nil); err != nil {
		return nil, err
	}
	l.head, l.tail = slices.Clip(l.head), slices.Clip(l.tail)
	return l, nil
}

// ID is the credential's id.
func (l *Listed) ID() string { return l.id }

// Status is the credential's status at now, as NewCredential shows it.
func (l *Listed) Status(now time.Time) string {
	return string(rotation.StatusAt(l.state, l.current, now))
}

// AppendJSON appends the credential as NewCredential(c, now).AppendJSON
// does, with status the result of l.Status(now).
func (l *Listed) AppendJSON(b []byte, status string, now time.Time) []byte {
	b = append(b, l.head...)
	var age *int64
	if l.current {
		a := int64(now.Sub(l.issued) / time.Second)
		age = &a
	}
	b = appendStatusAge(b, status, age)
	return append(b, l.tail...)
}

func appendTimePtr(b []byte, t *time.Time) ([]byte, error) {
	if t == nil {
		return append(b, "null"...), nil
	}
	return jsonenc.AppendTime(b, *t)
}
