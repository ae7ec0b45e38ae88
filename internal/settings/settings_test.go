package settings

import (
	"reflect"
	"testing"
)

func TestHTTPURL(t *testing.T) {
	for _, c := range []struct {
		raw  string
		rule URLRule
		want string // the message, "" when accepted
	}{
		{"https://auth.example.com/token", URLRule{}, ""},
		{"https://auth.example.com/token?tenant=a", URLRule{}, ""},
		{"http://127.0.0.1:8080/token", URLRule{}, ""},
		{"http://[::1]:8080/token", URLRule{}, ""},
		{"http://localhost/token", URLRule{}, ""},
		{"http://auth.internal/token", URLRule{InsecureHTTP: true}, ""},
		{"", URLRule{}, ""},
		{"", URLRule{Required: true}, `must be an absolute http or https URL, got ""`},
		{"auth.example.com/token", URLRule{Example: "https://auth.example.com/token"},
			`must be an absolute http or https URL such as https://auth.example.com/token, got "auth.example.com/token"`},
		{"ftp://auth.example.com/", URLRule{}, `must be an absolute http or https URL, got "ftp://auth.example.com/"`},
		{"https:///token", URLRule{}, `must be an absolute http or https URL, got "https:///token"`},
		{"http://auth.internal/token", URLRule{}, "uses plain http to auth.internal; use https (or set insecure_http: true inside a trusted network)"},
		{"http://localhost.evil.example/token", URLRule{}, "uses plain http to localhost.evil.example; use https (or set insecure_http: true inside a trusted network)"},
		// rotator:ignore: a made-up password in a URL, to prove it is refused
		{"https://user:hunter2@auth.example.com/token", URLRule{}, "must not hold credentials in the URL"},
		{"https://api.example.com/v3?x=1", URLRule{Bare: true}, "must not hold credentials, a query or a fragment"},
		{"https://api.example.com/v3#f", URLRule{Bare: true}, "must not hold credentials, a query or a fragment"},
		{"https://api.example.com/v3", URLRule{Bare: true}, ""},
		// rotator:ignore: made-up passwords in URLs that are refused, to prove they are not echoed
		{"ftp://user:hunter2@auth.example.com/", URLRule{}, `must be an absolute http or https URL, got "ftp://user:xxxxx@auth.example.com/"`},
		// rotator:ignore: as above, a URL that does not parse
		{"https://user:hunter2@auth example.com/%zz", URLRule{}, `must be an absolute http or https URL, got "xxxxx@auth example.com/%zz"`},
	} {
		r := NewReader(Map{})
		r.HTTPURL("token_url", c.raw, c.rule)
		var got string
		if errs := r.Errors(); len(errs) > 1 {
			t.Fatalf("%q: %d errors: %v", c.raw, len(errs), errs)
		} else if len(errs) == 1 {
			if errs[0].Field != "token_url" {
				t.Errorf("%q: field %q, want token_url", c.raw, errs[0].Field)
			}
			got = errs[0].Msg
		}
		if got != c.want {
			t.Errorf("HTTPURL(%q, %+v):\n got %q\nwant %q", c.raw, c.rule, got, c.want)
		}
	}
}

func TestNest(t *testing.T) {
	sub := NewReader(Map{"url": ""})
	sub.RequiredString("url")
	sub.Fail("", "names no check")
	r := NewReader(Map{})
	r.Nest("verify.introspection", sub.Errors())
	var fields []string
	for _, e := range r.Errors() {
		fields = append(fields, e.Field)
	}
	if want := []string{"verify.introspection.url", "verify.introspection"}; !reflect.DeepEqual(fields, want) {
		t.Errorf("fields %q, want %q", fields, want)
	}
}
