package secret

import (
	"errors"
	"testing"
)

func FuzzParseRef(f *testing.F) {
	for _, s := range []string{
		"${env:HOME}", "${file:/run/secrets/x}", "${aws-sm:prod/db}", "${aws-sm:prod/db#password}",
		"${aws-sm:arn:aws:secretsmanager:us-east-1:123456789012:secret:x-AbCdEf#k#k}",
		"${vault:x}", "${env:}", "${}", "${", "}", "", "${file:a}b}", "${aws-sm:#}", "${file:\xff}",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := ParseRef(s)
		if err != nil {
			if !errors.Is(err, ErrBadRef) {
				t.Fatalf("ParseRef(%q) error %v does not wrap ErrBadRef", s, err)
			}
			return
		}
		if !IsRef(s) {
			t.Fatalf("ParseRef(%q) succeeded but IsRef is false", s)
		}
		again, err := ParseRef(ref.String())
		if err != nil {
			t.Fatalf("ParseRef(%q) = %#v, but its String %q does not parse: %v", s, ref, ref.String(), err)
		}
		if again != ref {
			t.Fatalf("round trip of %q: %#v, then %#v", s, ref, again)
		}
		if ref.String() != s {
			t.Fatalf("ParseRef(%q).String() = %q, want the canonical input back", s, ref.String())
		}
	})
}
