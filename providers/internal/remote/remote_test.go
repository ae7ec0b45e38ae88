package remote

import (
	"errors"
	"net/http"
	"testing"

	"github.com/rotatorhq/rotator/providers"
)

func TestPrintable(t *testing.T) {
	if got := Printable("a\nb\x1b[31mc\x7f", 100); got != "ab[31mc" {
		t.Errorf("Printable = %q", got)
	}
	if got := Printable("abcdef", 3); got != "abc…" {
		t.Errorf("Printable = %q", got)
	}
}

func TestEndpointError(t *testing.T) {
	hints := map[string]string{"invalid_client": "check client_id"}
	resp := &http.Response{StatusCode: http.StatusBadRequest}
	e := EndpointError("token", "https://auth.example.com/token", resp,
		[]byte(`{"error":"invalid_client","error_description":"bad\nsecret"}`), hints)
	want := `token endpoint https://auth.example.com/token refused the request: invalid_client ("badsecret") [HTTP 400]: check client_id`
	if e.Error() != want {
		t.Errorf("Error() =\n %q\nwant\n %q", e.Error(), want)
	}
	if !errors.Is(e, providers.ErrPermanent) {
		t.Error("invalid_client is not permanent")
	}
	for _, c := range []struct {
		status    int
		body      string
		permanent bool
		oauthDoc  bool // the body is an OAuth error document
	}{
		{503, `{"error":"temporarily_unavailable"}`, false, true},
		{500, `<html>oops</html>`, false, false},
		{401, `<html>no</html>`, true, false},
		{400, `{"error":"invalid_grant"}`, true, true},
		{400, `{"error":5,"error_description":"typed wrong"}`, false, false},
	} {
		e := EndpointError("token", "https://a/t", &http.Response{StatusCode: c.status}, []byte(c.body), hints)
		if errors.Is(e, providers.ErrPermanent) != c.permanent {
			t.Errorf("HTTP %d %s: permanent %v, want %v (%v)", c.status, c.body, !c.permanent, c.permanent, e)
		}
		if !c.oauthDoc {
			if e.Code != "" || e.Description != "" {
				t.Errorf("HTTP %d %s: code %q, description %q from a body that is not an OAuth error", c.status, c.body, e.Code, e.Description)
			}
		}
	}
}
