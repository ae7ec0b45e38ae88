package secret

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
)

// sealCanary is a secret that must never appear in output or errors.
const sealCanary = "canary-Hs6Yc3Nq9Wb2Xe5Rj8Ug1Mt4"

var hex16 = regexp.MustCompile(`^[0-9a-f]{16}$`)

// testKey returns a deterministic key whose bytes are all b.
func testKey(t *testing.T, b byte) Key {
	t.Helper()
	k, err := NewKey(bytes.Repeat([]byte{b}, KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testKeyring(t *testing.T, active Key, older ...Key) Keyring {
	t.Helper()
	kr, err := NewKeyring(active, older...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func TestNewKey(t *testing.T) {
	t.Parallel()

	k1, k2 := testKey(t, 1), testKey(t, 2)
	if !hex16.MatchString(k1.ID) {
		t.Fatalf("ID %q is not 16 hex characters", k1.ID)
	}
	if again := testKey(t, 1); again.ID != k1.ID {
		t.Fatalf("ID not stable: %q then %q", k1.ID, again.ID)
	}
	if k1.ID == k2.ID {
		t.Fatal("different keys share an ID")
	}
	// Golden value: the ID scheme is persisted in every sealed row.
	if want := "3902a8aee8cac330"; k1.ID != want {
		t.Fatalf("ID of 32 bytes of 0x01 = %q, want %q; changing the scheme orphans sealed data", k1.ID, want)
	}
	for _, n := range []int{0, 16, 31, 33, 64} {
		if _, err := NewKey(make([]byte, n)); !errors.Is(err, ErrBadKey) {
			t.Errorf("NewKey(%d bytes) error = %v, want ErrBadKey", n, err)
		}
	}
	if k := GenerateKey(); !hex16.MatchString(k.ID) || k.ID == GenerateKey().ID || k.IsZero() {
		t.Fatal("GenerateKey does not produce distinct keys")
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()

	raw := make([]byte, KeySize)
	for i := range raw {
		raw[i] = byte(0xf0 + i) // exercises the characters where the alphabets differ
	}
	want, err := NewKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	for name, in := range map[string]string{
		"std":          base64.StdEncoding.EncodeToString(raw),
		"url":          base64.URLEncoding.EncodeToString(raw),
		"raw std":      base64.RawStdEncoding.EncodeToString(raw),
		"raw url":      base64.RawURLEncoding.EncodeToString(raw),
		"with newline": base64.StdEncoding.EncodeToString(raw) + "\n",
		"with spaces":  "  " + base64.StdEncoding.EncodeToString(raw) + " \r\n",
	} {
		got, err := ParseKey(in)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if got.ID != want.ID {
			t.Errorf("%s: ID %s, want %s", name, got.ID, want.ID)
		}
	}

	notKey := base64.StdEncoding.EncodeToString([]byte(sealCanary)) // valid base64, wrong length
	for name, in := range map[string]string{
		"empty":       "",
		"not base64":  sealCanary + "!!",
		"too short":   notKey,
		"16 bytes":    base64.StdEncoding.EncodeToString(make([]byte, 16)),
		"hex instead": fmt.Sprintf("%x", raw),
	} {
		_, err := ParseKey(in)
		if !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: error = %v, want ErrBadKey", name, err)
			continue
		}
		if !strings.Contains(err.Error(), "openssl rand -base64 32") {
			t.Errorf("%s: error %q does not say how to make a key", name, err)
		}
		if strings.Contains(err.Error(), sealCanary) || strings.Contains(err.Error(), notKey) {
			t.Errorf("%s: error repeats the input: %v", name, err)
		}
	}
}

func TestKeyringSealOpen(t *testing.T) {
	t.Parallel()

	secret := NewString(sealCanary)
	setup := func(t *testing.T) (Keyring, string, []byte) {
		t.Helper()
		kr := testKeyring(t, GenerateKey())
		keyID, sealed, err := kr.Seal("cred-1", "ver-1", secret)
		if err != nil {
			t.Fatal(err)
		}
		return kr, keyID, sealed
	}

	t.Run("round trip", func(t *testing.T) {
		t.Parallel()
		kr, keyID, sealed := setup(t)
		if keyID != kr.ActiveKeyID() {
			t.Fatalf("sealed under %q, want the active key %q", keyID, kr.ActiveKeyID())
		}
		if bytes.Contains(sealed, []byte(sealCanary)) {
			t.Fatal("sealed bytes contain the plaintext")
		}
		if len(sealed) != 12+len(sealCanary)+16 {
			t.Fatalf("sealed length %d, want nonce+plaintext+tag = %d", len(sealed), 12+len(sealCanary)+16)
		}
		v, err := kr.Open("cred-1", "ver-1", keyID, sealed)
		if err != nil {
			t.Fatal(err)
		}
		if !v.Equal(secret) {
			t.Fatal("opened value differs from the sealed one")
		}
	})
	t.Run("empty value", func(t *testing.T) {
		t.Parallel()
		kr, _, _ := setup(t)
		keyID, sealed, err := kr.Seal("c", "v", Value{})
		if err != nil {
			t.Fatal(err)
		}
		v, err := kr.Open("c", "v", keyID, sealed)
		if err != nil || !v.IsZero() {
			t.Fatalf("got (%d bytes, %v), want the empty value", v.Len(), err)
		}
	})
	t.Run("two seals differ", func(t *testing.T) {
		t.Parallel()
		kr, _, sealed := setup(t)
		_, sealed2, err := kr.Seal("cred-1", "ver-1", secret)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(sealed, sealed2) || bytes.Equal(sealed[:12], sealed2[:12]) {
			t.Fatal("two seals of the same value share a nonce or ciphertext")
		}
	})

	failures := map[string]func(sealed []byte) (credID, verID string, data []byte){
		"tampered ciphertext": func(s []byte) (string, string, []byte) {
			s = bytes.Clone(s)
			s[len(s)/2] ^= 1
			return "cred-1", "ver-1", s
		},
		"tampered nonce": func(s []byte) (string, string, []byte) {
			s = bytes.Clone(s)
			s[0] ^= 0x80
			return "cred-1", "ver-1", s
		},
		"tampered tag": func(s []byte) (string, string, []byte) {
			s = bytes.Clone(s)
			s[len(s)-1] ^= 1
			return "cred-1", "ver-1", s
		},
		"truncated": func(s []byte) (string, string, []byte) { return "cred-1", "ver-1", s[:len(s)-1] },
		"too short": func(s []byte) (string, string, []byte) { return "cred-1", "ver-1", s[:20] },
		"empty":     func([]byte) (string, string, []byte) { return "cred-1", "ver-1", nil },
		"other version id": func(s []byte) (string, string, []byte) {
			return "cred-1", "ver-2", s
		},
		"other credential id": func(s []byte) (string, string, []byte) {
			return "cred-2", "ver-1", s
		},
		"ids shifted across the boundary": func(s []byte) (string, string, []byte) {
			return "cred-1v", "er-1", s
		},
	}
	for name, mutate := range failures {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			kr, keyID, sealed := setup(t)
			credID, verID, data := mutate(sealed)
			v, err := kr.Open(credID, verID, keyID, data)
			if !errors.Is(err, ErrOpen) {
				t.Fatalf("Open = (%d bytes, %v), want ErrOpen", v.Len(), err)
			}
			if !strings.Contains(err.Error(), credID) || !strings.Contains(err.Error(), verID) {
				t.Fatalf("error %q does not name credential %q and version %q", err, credID, verID)
			}
			if strings.Contains(err.Error(), sealCanary) {
				t.Fatalf("error leaks the secret: %v", err)
			}
		})
	}

	t.Run("unknown key id", func(t *testing.T) {
		t.Parallel()
		kr, _, sealed := setup(t)
		_, err := kr.Open("cred-1", "ver-1", "0123456789abcdef", sealed)
		if !errors.Is(err, ErrUnknownKey) || errors.Is(err, ErrOpen) {
			t.Fatalf("error = %v, want ErrUnknownKey only", err)
		}
		if !strings.Contains(err.Error(), "0123456789abcdef") || !strings.Contains(err.Error(), "cred-1") {
			t.Fatalf("error %q does not name the key id and credential", err)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		t.Parallel()
		_, keyID, sealed := setup(t)
		other := testKeyring(t, GenerateKey())
		if _, err := other.Open("cred-1", "ver-1", keyID, sealed); !errors.Is(err, ErrUnknownKey) {
			t.Fatalf("error = %v, want ErrUnknownKey", err)
		}
		// Even when told the right key id, a keyring without that key fails.
		if _, err := other.Open("cred-1", "ver-1", other.ActiveKeyID(), sealed); !errors.Is(err, ErrOpen) {
			t.Fatalf("error = %v, want ErrOpen", err)
		}
	})
	t.Run("empty ids rejected", func(t *testing.T) {
		t.Parallel()
		kr, _, _ := setup(t)
		for _, ids := range [][2]string{{"", "v"}, {"c", ""}} {
			if _, _, err := kr.Seal(ids[0], ids[1], secret); err == nil {
				t.Errorf("Seal(%q, %q) succeeded", ids[0], ids[1])
			}
		}
	})
	t.Run("zero keyring", func(t *testing.T) {
		t.Parallel()
		var kr Keyring
		if _, _, err := kr.Seal("c", "v", secret); err == nil {
			t.Fatal("Seal on a zero Keyring succeeded")
		}
		if _, err := kr.Open("c", "v", "k", make([]byte, 64)); err == nil {
			t.Fatal("Open on a zero Keyring succeeded")
		}
		if kr.ActiveKeyID() != "" || kr.Fingerprint(secret) != "" || kr.FingerprintKeyID() != "" {
			t.Fatal("zero Keyring reports keys")
		}
	})
}

func TestKeyringRotation(t *testing.T) {
	t.Parallel()

	oldKey, newKey := testKey(t, 1), testKey(t, 2)
	oldRing := testKeyring(t, oldKey)
	keyID, sealed, err := oldRing.Seal("cred", "v1", NewString(sealCanary))
	if err != nil {
		t.Fatal(err)
	}

	ring := testKeyring(t, newKey, oldKey, newKey) // duplicate ignored
	if got := ring.KeyIDs(); len(got) != 2 || got[0] != newKey.ID || got[1] != oldKey.ID {
		t.Fatalf("KeyIDs = %v, want [%s %s]", got, newKey.ID, oldKey.ID)
	}
	v, err := ring.Open("cred", "v1", keyID, sealed)
	if err != nil {
		t.Fatalf("an older key in the keyring does not open: %v", err)
	}
	if v.RevealString() != sealCanary {
		t.Fatal("wrong plaintext under the older key")
	}
	newID, _, err := ring.Seal("cred", "v1", v)
	if err != nil || newID != newKey.ID {
		t.Fatalf("re-seal under %q (%v), want the active key %q", newID, err, newKey.ID)
	}
	if _, err := testKeyring(t, newKey).Open("cred", "v1", keyID, sealed); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("without the old key: error = %v, want ErrUnknownKey", err)
	}
	if _, err := NewKeyring(Key{}); !errors.Is(err, ErrBadKey) {
		t.Fatalf("NewKeyring(zero Key) error = %v, want ErrBadKey", err)
	}
	if _, err := NewKeyring(newKey, Key{ID: "forged"}); !errors.Is(err, ErrBadKey) {
		t.Fatalf("NewKeyring with a key without material: error = %v, want ErrBadKey", err)
	}
}

func TestFingerprint(t *testing.T) {
	t.Parallel()

	kr := testKeyring(t, testKey(t, 1), testKey(t, 2))
	fp := kr.Fingerprint(NewString(sealCanary))
	if !hex16.MatchString(fp) {
		t.Fatalf("fingerprint %q is not 16 hex characters", fp)
	}
	if again := testKeyring(t, testKey(t, 1)).Fingerprint(NewString(sealCanary)); again != fp {
		t.Fatalf("fingerprint not stable across keyrings with the same active key: %s, %s", fp, again)
	}
	// Golden value: fingerprints are stored and compared across restarts.
	if want := "bb774429feee5cb7"; kr.Fingerprint(NewString("value")) != want {
		t.Fatalf("Fingerprint(value) = %s, want %s; changing the derivation breaks stored fingerprints", kr.Fingerprint(NewString("value")), want)
	}
	if kr.Fingerprint(NewString(sealCanary+"x")) == fp {
		t.Fatal("different values share a fingerprint")
	}
	rekeyed := testKeyring(t, testKey(t, 2), testKey(t, 1))
	if rekeyed.Fingerprint(NewString(sealCanary)) == fp || rekeyed.FingerprintKeyID() == kr.FingerprintKeyID() {
		t.Fatal("a new active key must change fingerprints and the fingerprint key id")
	}
	if !hex16.MatchString(kr.FingerprintKeyID()) || kr.FingerprintKeyID() == kr.ActiveKeyID() {
		t.Fatalf("FingerprintKeyID %q must be 16 hex and differ from the key id", kr.FingerprintKeyID())
	}
	// Not a plain hash of the value.
	if strings.Contains(fmt.Sprintf("%x", []byte(sealCanary)), fp) {
		t.Fatal("fingerprint is derived from the value alone")
	}
}

func TestKeyPrinting(t *testing.T) {
	t.Parallel()

	raw := bytes.Repeat([]byte{0x41}, KeySize) // "AAAA..." so a leak is visible in any form
	k, err := NewKey(raw)
	if err != nil {
		t.Fatal(err)
	}
	kr := testKeyring(t, k, testKey(t, 7))
	type holder struct {
		K   Key
		KR  Keyring
		k   Key
		kr  Keyring
		Ptr *Keyring
	}
	subject := holder{K: k, KR: kr, k: k, kr: kr, Ptr: &kr}
	forbidden := []string{string(raw), base64.StdEncoding.EncodeToString(raw), fmt.Sprintf("%x", raw), fmt.Sprint(raw), "65 65 65 65"}
	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outputs = append(outputs, fmt.Sprintf(verb, subject), fmt.Sprintf(verb, k), fmt.Sprintf(verb, kr))
	}
	b, err := json.Marshal(subject)
	if err != nil {
		t.Fatal(err)
	}
	outputs = append(outputs, string(b))
	for _, out := range outputs {
		for _, f := range forbidden {
			if strings.Contains(out, f) {
				t.Fatalf("key material printed: %s", out)
			}
		}
	}
	if got := fmt.Sprint(k); !strings.Contains(got, k.ID) {
		t.Fatalf("Key prints %q, want its ID", got)
	}
}
