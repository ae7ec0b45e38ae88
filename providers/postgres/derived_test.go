package postgres

import (
	"fmt"
	"testing"
)

func TestDerived(t *testing.T) {
	t.Parallel()
	d := newDerived()
	v, err := scramVerifier("pw-one", 64)
	if err != nil {
		t.Fatal(err)
	}
	d.add(v, "pw-one")
	other, err := scramVerifier("pw-one", 64) // same password, another salt
	if err != nil {
		t.Fatal(err)
	}
	cases := map[string]struct {
		verifier, password string
		want               bool
	}{
		"derived here":             {v, "pw-one", true},
		"another password":         {v, "pw-two", false},
		"not derived here":         {other, "pw-one", false},
		"a prefix of the password": {v, "pw-on", false},
	}
	for name, c := range cases {
		if got := d.known(c.verifier, c.password); got != c.want {
			t.Errorf("%s: known = %v, want %v", name, got, c.want)
		}
	}
	// known is a shortcut of matches, never a contradiction of it.
	p, err := parseSCRAM(v)
	if err != nil || !p.matches("pw-one") {
		t.Fatalf("the derived verifier does not match its password: %v", err)
	}
	// The map stays bounded.
	for i := range derivedCap + 10 {
		d.add(fmt.Sprintf("SCRAM-SHA-256$64:x$%d:y", i), "p")
	}
	if n := len(d.m); n > derivedCap {
		t.Fatalf("%d entries, cap %d", n, derivedCap)
	}
	// Nothing of the password is kept in clear.
	for k, tag := range d.m {
		if k == "pw-one" || string(tag[:]) == "pw-one" {
			t.Fatal("a password is kept")
		}
	}
}
