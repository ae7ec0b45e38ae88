package postgres

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"sync"
)

// derivedCap bounds the verifiers a provider instance remembers: two per
// credential it rotates (the current and the previous version's) for
// several thousand credentials, at about 200 bytes each.
const derivedCap = 16384

// derived remembers the SCRAM verifiers this provider instance derived, so
// that checking one of them against the same password later (Verify with
// verify: verifier, Revoke's "is this still the role's password") needs no
// second key derivation: at 4096 iterations a derivation is the largest
// part of the provider's CPU per rotation.
//
// It maps a verifier string to a keyed hash of the password it was derived
// from (HMAC-SHA-256 under a random key of this process): no password, nor
// anything a password can be tested against outside the process, is kept.
// A stored verifier that equals one derived here from a password with the
// same keyed hash was derived from that password, so it matches it; any
// other verifier is checked by derivation as before. Eviction is arbitrary
// (Go's map order) once the cap is reached: a miss only costs a derivation.
type derived struct {
	key []byte
	mu  sync.Mutex
	m   map[string][sha256.Size]byte
}

func newDerived() *derived {
	key := make([]byte, 32)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (Go 1.24+)
	return &derived{key: key, m: make(map[string][sha256.Size]byte)}
}

func (d *derived) tag(password string) [sha256.Size]byte {
	h := hmac.New(sha256.New, d.key)
	h.Write([]byte(password))
	var t [sha256.Size]byte
	h.Sum(t[:0])
	return t
}

// add records that verifier was derived from password.
func (d *derived) add(verifier, password string) {
	t := d.tag(password)
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.m) >= derivedCap {
		for k := range d.m {
			delete(d.m, k)
			if len(d.m) < derivedCap*3/4 {
				break
			}
		}
	}
	d.m[verifier] = t
}

// known reports whether verifier was derived here from password. false
// means "not known", not "does not match".
func (d *derived) known(verifier, password string) bool {
	d.mu.Lock()
	t, ok := d.m[verifier]
	d.mu.Unlock()
	if !ok {
		return false
	}
	want := d.tag(password)
	return subtle.ConstantTimeCompare(t[:], want[:]) == 1
}
