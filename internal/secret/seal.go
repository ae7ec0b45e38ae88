package secret

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
)

// KeySize is the size in bytes of a master key (AES-256).
const KeySize = 32

const (
	// keyIDLabel domain-separates key ids from every other hash of a key.
	keyIDLabel = "rotator master key id v1\x00"
	// fingerprintKeyIDLabel does the same for the fingerprint key's id.
	fingerprintKeyIDLabel = "rotator fingerprint key id v1\x00"
	// fingerprintInfo is the HKDF info deriving the fingerprint key.
	fingerprintInfo = "rotator fingerprint v1"
	// nonceSize is the AES-GCM standard nonce size.
	nonceSize = 12
)

var (
	// ErrBadKey is returned (wrapped) when key material is malformed.
	ErrBadKey = errors.New("invalid master key")
	// ErrUnknownKey is returned (wrapped) by Open when a value was sealed
	// under a key the keyring does not hold.
	ErrUnknownKey = errors.New("sealed under an unknown key")
	// ErrOpen is returned (wrapped) by Open when a sealed value fails
	// authentication: it was tampered with, truncated, or belongs to another
	// credential or version.
	ErrOpen = errors.New("cannot open sealed value")
)

// Key is a 32-byte AES-256 master key with a stable public identifier.
// Printing a Key shows only its ID. Make one with NewKey, ParseKey or
// GenerateKey.
type Key struct {
	// ID is the first 16 hex characters of a domain-separated SHA-256 of the
	// key. It identifies the key in storage and logs and reveals nothing
	// useful about it.
	ID string

	material Value
}

// NewKey returns the Key for b, which must be exactly KeySize bytes. b is
// copied.
func NewKey(b []byte) (Key, error) {
	if len(b) != KeySize {
		return Key{}, fmt.Errorf("%w: got %d bytes, want %d", ErrBadKey, len(b), KeySize)
	}
	h := sha256.New()
	h.Write([]byte(keyIDLabel))
	h.Write(b)
	return Key{ID: hex.EncodeToString(h.Sum(nil))[:16], material: New(b)}, nil
}

// ParseKey decodes a base64 master key (standard or URL alphabet, with or
// without padding; surrounding white space ignored). Errors never repeat the
// input.
func ParseKey(s string) (Key, error) {
	s = strings.TrimSpace(s)
	const how = "it must be base64 of 32 random bytes, e.g. the output of `openssl rand -base64 32`"
	if s == "" {
		return Key{}, fmt.Errorf("%w: empty; %s", ErrBadKey, how)
	}
	var (
		b   []byte
		err error
	)
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return Key{}, fmt.Errorf("%w: not valid base64; %s", ErrBadKey, how)
	}
	defer clear(b)
	if len(b) != KeySize {
		return Key{}, fmt.Errorf("%w: decodes to %d bytes, want %d; %s", ErrBadKey, len(b), KeySize, how)
	}
	return NewKey(b)
}

// GenerateKey returns a new random Key.
func GenerateKey() Key {
	b := make([]byte, KeySize)
	_, _ = rand.Read(b) // never fails since Go 1.24
	k, _ := NewKey(b)
	clear(b)
	return k
}

// IsZero reports whether k holds no key material.
func (k Key) IsZero() bool { return k.material.IsZero() }

// encode returns the key as standard base64, for writing a generated key
// file. It reveals the key.
func (k Key) encode() string { return base64.StdEncoding.EncodeToString(k.material.bytes()) }

// String implements fmt.Stringer; it shows only the key id.
func (k Key) String() string { return "key " + k.ID }

// GoString implements fmt.GoStringer; it shows only the key id.
func (k Key) GoString() string { return k.String() }

// Format implements fmt.Formatter so that every verb shows only the key id.
func (k Key) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(k.String())) }

// LogValue implements slog.LogValuer; it logs only the key id.
func (k Key) LogValue() slog.Value { return slog.StringValue(k.ID) }

// MarshalText implements encoding.TextMarshaler; it encodes only the key id.
func (k Key) MarshalText() ([]byte, error) { return []byte(k.ID), nil }

// Keyring seals under one active key and opens under any key it holds, so
// that values sealed under an older master key stay readable while
// `rotator keys rotate` re-seals them. A Keyring is immutable and safe for
// concurrent use; its zero value holds no key and fails every operation.
// Printing a Keyring shows only key ids.
type Keyring struct {
	k *keyring
}

type keyring struct {
	active  string
	order   []string // active first, then older keys in the order given
	aeads   map[string]cipher.AEAD
	fpKey   []byte
	fpKeyID string
}

// NewKeyring returns a keyring that seals under active and opens under
// active and every older key. Duplicate keys are ignored.
func NewKeyring(active Key, older ...Key) (Keyring, error) {
	kr := &keyring{active: active.ID, aeads: make(map[string]cipher.AEAD)}
	for i, k := range append([]Key{active}, older...) {
		if k.material.Len() != KeySize || k.ID == "" {
			return Keyring{}, fmt.Errorf("%w: keyring key %d is empty; build keys with NewKey, ParseKey or GenerateKey", ErrBadKey, i)
		}
		if _, dup := kr.aeads[k.ID]; dup {
			continue
		}
		material := k.material.bytes()
		block, err := aes.NewCipher(material)
		clear(material)
		if err != nil {
			return Keyring{}, fmt.Errorf("%w: key %s: %w", ErrBadKey, k.ID, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return Keyring{}, fmt.Errorf("%w: key %s: %w", ErrBadKey, k.ID, err)
		}
		kr.aeads[k.ID] = aead
		kr.order = append(kr.order, k.ID)
	}
	material := active.material.bytes()
	fpKey, err := hkdf.Key(sha256.New, material, nil, fingerprintInfo, 32)
	clear(material)
	if err != nil {
		return Keyring{}, fmt.Errorf("derive fingerprint key from key %s: %w", active.ID, err)
	}
	h := sha256.New()
	h.Write([]byte(fingerprintKeyIDLabel))
	h.Write(fpKey)
	kr.fpKey, kr.fpKeyID = fpKey, hex.EncodeToString(h.Sum(nil))[:16]
	return Keyring{k: kr}, nil
}

// errEmptyKeyring is returned when a zero Keyring is used.
var errEmptyKeyring = errors.New("keyring holds no key")

// ActiveKeyID returns the id of the key Seal uses, or "" for a zero Keyring.
func (kr Keyring) ActiveKeyID() string {
	if kr.k == nil {
		return ""
	}
	return kr.k.active
}

// KeyIDs returns the ids of every key the keyring can open with, the
// active key first.
func (kr Keyring) KeyIDs() []string {
	if kr.k == nil {
		return nil
	}
	return append([]string(nil), kr.k.order...)
}

// Missing returns, in order, the key ids among keyIDs that the keyring
// cannot open with: values sealed under them are unreadable here.
func (kr Keyring) Missing(keyIDs []string) []string {
	var out []string
	for _, id := range keyIDs {
		if kr.k == nil {
			out = append(out, id)
			continue
		}
		if _, ok := kr.k.aeads[id]; !ok {
			out = append(out, id)
		}
	}
	return out
}

// Seal encrypts v with AES-256-GCM under the active key and returns that
// key's id and nonce||ciphertext. The credential and version ids are bound
// as additional data, so a sealed value only opens for the same ids: rows
// cannot be swapped. Both ids must be non-empty.
func (kr Keyring) Seal(credentialID, versionID string, v Value) (keyID string, sealed []byte, err error) {
	if kr.k == nil {
		return "", nil, fmt.Errorf("seal credential %q version %q: %w", credentialID, versionID, errEmptyKeyring)
	}
	if credentialID == "" || versionID == "" {
		return "", nil, fmt.Errorf("seal credential %q version %q: credential id and version id must not be empty", credentialID, versionID)
	}
	aead := kr.k.aeads[kr.k.active]
	out := make([]byte, nonceSize, nonceSize+v.Len()+aead.Overhead())
	_, _ = rand.Read(out) // never fails since Go 1.24
	plain := v.bytes()
	out = aead.Seal(out, out[:nonceSize], plain, sealAAD(credentialID, versionID))
	clear(plain)
	return kr.k.active, out, nil
}

// Open decrypts a value sealed by Seal for the same credential and version
// ids. A key id the keyring does not hold wraps ErrUnknownKey; any
// authentication failure wraps ErrOpen.
func (kr Keyring) Open(credentialID, versionID, keyID string, sealed []byte) (Value, error) {
	if kr.k == nil {
		return Value{}, fmt.Errorf("open credential %q version %q: %w", credentialID, versionID, errEmptyKeyring)
	}
	aead, ok := kr.k.aeads[keyID]
	if !ok {
		return Value{}, fmt.Errorf("open credential %q version %q: %w %q (keyring holds %s; add the old key to ROTATOR_MASTER_KEY_PREVIOUS)",
			credentialID, versionID, ErrUnknownKey, keyID, strings.Join(kr.k.order, ", "))
	}
	if len(sealed) < nonceSize+aead.Overhead() {
		return Value{}, fmt.Errorf("%w of credential %q version %q: too short (%d bytes)", ErrOpen, credentialID, versionID, len(sealed))
	}
	plain, err := aead.Open(nil, sealed[:nonceSize], sealed[nonceSize:], sealAAD(credentialID, versionID))
	if err != nil {
		return Value{}, fmt.Errorf("%w of credential %q version %q under key %s: authentication failed (tampered, or sealed for another credential or version)",
			ErrOpen, credentialID, versionID, keyID)
	}
	v := New(plain)
	clear(plain)
	return v, nil
}

// sealAAD is the additional data of a sealed value: each id prefixed by its
// 4-byte big-endian length, so that no two id pairs encode alike.
func sealAAD(credentialID, versionID string) []byte {
	aad := make([]byte, 0, 8+len(credentialID)+len(versionID))
	aad = binary.BigEndian.AppendUint32(aad, uint32(len(credentialID)))
	aad = append(aad, credentialID...)
	aad = binary.BigEndian.AppendUint32(aad, uint32(len(versionID)))
	aad = append(aad, versionID...)
	return aad
}

// Fingerprint returns the first 16 hex characters of HMAC-SHA256(v) under
// the fingerprint key, which HKDF-SHA256 derives from the active key (info
// "rotator fingerprint v1"). Equal values have equal fingerprints under the
// same active key; the fingerprint reveals nothing about the value to anyone
// without the key. Re-keying (a new active key) changes every fingerprint:
// compare fingerprints only when their FingerprintKeyID matches. A zero
// Keyring returns "".
func (kr Keyring) Fingerprint(v Value) string {
	if kr.k == nil {
		return ""
	}
	m := hmac.New(sha256.New, kr.k.fpKey)
	plain := v.bytes()
	m.Write(plain)
	clear(plain)
	return hex.EncodeToString(m.Sum(nil))[:16]
}

// FingerprintKeyID identifies the key Fingerprint uses (16 hex characters),
// so that stored fingerprints can record which key made them. A zero
// Keyring returns "".
func (kr Keyring) FingerprintKeyID() string {
	if kr.k == nil {
		return ""
	}
	return kr.k.fpKeyID
}

// String implements fmt.Stringer; it shows only key ids.
func (kr Keyring) String() string {
	if kr.k == nil {
		return "keyring (empty)"
	}
	return "keyring active=" + kr.k.active + " keys=" + strings.Join(kr.k.order, ",")
}

// GoString implements fmt.GoStringer; it shows only key ids.
func (kr Keyring) GoString() string { return kr.String() }

// Format implements fmt.Formatter so that every verb shows only key ids.
func (kr Keyring) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(kr.String())) }

// LogValue implements slog.LogValuer; it logs only key ids.
func (kr Keyring) LogValue() slog.Value { return slog.StringValue(kr.String()) }

var (
	_ fmt.Formatter  = Key{}
	_ slog.LogValuer = Key{}
	_ fmt.Formatter  = Keyring{}
	_ slog.LogValuer = Keyring{}
)
