package api

import (
	"bytes"
	"encoding/json"
	"testing"

	"github.com/rotatorhq/rotator/internal/view"
)

func TestCredentialListJSONIsMarshal(t *testing.T) {
	next := cursor{Kind: "credentials", After: "b<c"}.encode()
	for name, l := range map[string]credentialList{
		"empty":     {Credentials: []view.Credential{}},
		"last page": {Credentials: []view.Credential{{ID: "a", Labels: map[string]string{"k": "v"}}, {ID: "b"}}},
		"more":      {Credentials: []view.Credential{{ID: "a"}}, NextCursor: next},
	} {
		want, err := json.Marshal(l)
		if err != nil {
			t.Fatal(err)
		}
		got, err := l.appendJSON(nil)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: appendJSON = %s, %v; json.Marshal gives %s", name, got, err, want)
		}
	}
}

// credentialList is the body of GET /v1/credentials, as json.Marshal
// encodes it: the credentials as
// `rotator credentials list -o json` shows them, and where the next page
// starts (null on the last page).
type credentialList struct {
	Credentials []view.Credential `json:"credentials"`
	NextCursor  *string           `json:"next_cursor"`
}

// appendJSON appends l framed as listCredentials frames a page.
func (l credentialList) appendJSON(b []byte) ([]byte, error) {
	b = appendListStart(b)
	for i := range l.Credentials {
		if i > 0 {
			b = append(b, ',')
		}
		var err error
		if b, err = l.Credentials[i].AppendJSON(b); err != nil {
			return b, err
		}
	}
	return appendListEnd(b, l.NextCursor)
}
