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
