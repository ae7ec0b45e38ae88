// Package jose holds the small part of JOSE that rotator signs with: key
// pairs for JWS (ES256 and RS256), their JSON Web Key form (RFC 7517) with
// the RFC 7638 thumbprint as key id, PEM encoding, and compact JWS signing
// of JWT claims (RFC 7515, RFC 7519).
//
// Private keys travel as secret.Value; no function here puts key material
// in an error.
package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
)

// Signature algorithms (RFC 7518 §3.1).
const (
	// ES256 is ECDSA on P-256 with SHA-256.
	ES256 = "ES256"
	// RS256 is RSASSA-PKCS1-v1_5 with SHA-256.
	RS256 = "RS256"
)

// RSABits is the size of the RSA keys GenerateKey makes.
const RSABits = 2048

// ErrKey marks a value that is not a usable private key.
var ErrKey = errors.New("not a usable private key")

// GenerateKey returns a new private key for alg.
func GenerateKey(alg string) (crypto.Signer, error) {
	switch alg {
	case ES256:
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256:
		return rsa.GenerateKey(rand.Reader, RSABits)
	}
	return nil, fmt.Errorf("unsupported algorithm %q; supported are ES256 and RS256", alg)
}

// AlgOf returns the algorithm a key signs with: ES256 for a P-256 key,
// RS256 for an RSA key.
func AlgOf(key crypto.Signer) (string, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() {
			return "", fmt.Errorf("%w: an ECDSA key on %s; ES256 needs P-256", ErrKey, k.Curve.Params().Name)
		}
		return ES256, nil
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return "", fmt.Errorf("%w: a %d-bit RSA key; RS256 needs 2048 bits or more", ErrKey, k.N.BitLen())
		}
		return RS256, nil
	}
	return "", fmt.Errorf("%w: a %T; supported are P-256 ECDSA and RSA keys", ErrKey, key)
}

// EncodePEM returns key as a PKCS #8 "PRIVATE KEY" PEM block.
func EncodePEM(key crypto.Signer) (secret.Value, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return secret.Value{}, fmt.Errorf("encoding the private key: %w", ErrKey)
	}
	return secret.New(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})), nil
}

// ParsePrivateKey reads a private key from PEM (PKCS #8 "PRIVATE KEY",
// PKCS #1 "RSA PRIVATE KEY" or SEC 1 "EC PRIVATE KEY") or from a private
// JWK (JSON with "d"). Errors say what the value is not, never what it is.
func ParsePrivateKey(v secret.Value) (crypto.Signer, error) {
	raw := v.Reveal()
	if j := trimSpace(raw); len(j) > 0 && j[0] == '{' {
		return parseJWK(j)
	}
	block, _ := pem.Decode(raw)
	if block == nil {
		return nil, fmt.Errorf("%w: neither a PEM private key (-----BEGIN PRIVATE KEY-----) nor a private JWK ({\"kty\":...,\"d\":...})", ErrKey)
	}
	var (
		key any
		err error
	)
	switch block.Type {
	case "PRIVATE KEY":
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case "RSA PRIVATE KEY":
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case "EC PRIVATE KEY":
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("%w: a PEM block of type %q; want PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY", ErrKey, printable(block.Type))
	}
	if err != nil {
		return nil, fmt.Errorf("%w: a %s PEM block that does not parse", ErrKey, block.Type)
	}
	s, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%w: a %T", ErrKey, key)
	}
	if _, err := AlgOf(s); err != nil {
		return nil, err
	}
	return s, nil
}

// JWK is a JSON Web Key (RFC 7517) of an EC P-256 or RSA key. The private
// members (D, P, Q, DP, DQ, QI) are set only in a private JWK.
type JWK struct {
	Kty string `json:"kty"`
	Kid string `json:"kid,omitempty"`
	Use string `json:"use,omitempty"`
	Alg string `json:"alg,omitempty"`
	Crv string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	D   string `json:"d,omitempty"`
	P   string `json:"p,omitempty"`
	Q   string `json:"q,omitempty"`
	DP  string `json:"dp,omitempty"`
	DQ  string `json:"dq,omitempty"`
	QI  string `json:"qi,omitempty"`
}

// JWKS is a JSON Web Key Set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// Public returns j without its private members.
func (j JWK) Public() JWK {
	j.D, j.P, j.Q, j.DP, j.DQ, j.QI = "", "", "", "", "", ""
	return j
}

var b64 = base64.RawURLEncoding

// PublicJWK returns the public JWK of key, with alg, use "sig" and the RFC
// 7638 thumbprint as kid.
func PublicJWK(key crypto.Signer) (JWK, error) {
	alg, err := AlgOf(key)
	if err != nil {
		return JWK{}, err
	}
	var j JWK
	switch k := key.Public().(type) {
	case *ecdsa.PublicKey:
		x, y, err := ecCoordinates(k)
		if err != nil {
			return JWK{}, err
		}
		j = JWK{Kty: "EC", Crv: "P-256", X: b64.EncodeToString(x), Y: b64.EncodeToString(y)}
	case *rsa.PublicKey:
		j = JWK{Kty: "RSA", N: b64.EncodeToString(k.N.Bytes()), E: b64.EncodeToString(big.NewInt(int64(k.E)).Bytes())}
	}
	j.Kid = Thumbprint(j)
	j.Alg, j.Use = alg, "sig"
	return j, nil
}

// PrivateJWK returns key as a private JWK in JSON, kid included.
func PrivateJWK(key crypto.Signer) (secret.Value, error) {
	j, err := PublicJWK(key)
	if err != nil {
		return secret.Value{}, err
	}
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		b, err := k.Bytes()
		if err != nil {
			return secret.Value{}, fmt.Errorf("encoding the private key: %w", ErrKey)
		}
		j.D = b64.EncodeToString(b)
	case *rsa.PrivateKey:
		k.Precompute()
		j.D = b64.EncodeToString(k.D.Bytes())
		j.P, j.Q = b64.EncodeToString(k.Primes[0].Bytes()), b64.EncodeToString(k.Primes[1].Bytes())
		j.DP, j.DQ = b64.EncodeToString(k.Precomputed.Dp.Bytes()), b64.EncodeToString(k.Precomputed.Dq.Bytes())
		j.QI = b64.EncodeToString(k.Precomputed.Qinv.Bytes())
	}
	raw, err := json.Marshal(j)
	if err != nil {
		return secret.Value{}, fmt.Errorf("encoding the private key: %w", ErrKey)
	}
	return secret.New(raw), nil
}

// Thumbprint returns the RFC 7638 SHA-256 thumbprint of a public JWK,
// base64url-encoded: the hash of its required members, in lexicographic
// order, with no white space.
func Thumbprint(j JWK) string {
	var canon string
	switch j.Kty {
	case "EC":
		canon = fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, j.Crv, j.X, j.Y)
	case "RSA":
		canon = fmt.Sprintf(`{"e":%q,"kty":"RSA","n":%q}`, j.E, j.N)
	default:
		return ""
	}
	sum := sha256.Sum256([]byte(canon))
	return b64.EncodeToString(sum[:])
}

// Sign returns the compact JWS of claims signed by key, with the header
// {"alg", "typ": "JWT", "kid"} (kid omitted when empty).
func Sign(key crypto.Signer, kid string, claims any) (string, error) {
	alg, err := AlgOf(key)
	if err != nil {
		return "", err
	}
	header := map[string]string{"alg": alg, "typ": "JWT"}
	if kid != "" {
		header["kid"] = kid
	}
	h, err := json.Marshal(header)
	if err != nil {
		return "", err
	}
	c, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encoding the JWT claims: %w", err)
	}
	signing := b64.EncodeToString(h) + "." + b64.EncodeToString(c)
	sum := sha256.Sum256([]byte(signing))
	var sig []byte
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, sum[:])
		if err != nil {
			return "", fmt.Errorf("signing the JWT: %w", err)
		}
		// JWS wants R and S as fixed 32-byte big-endian integers
		// (RFC 7518 §3.4), not ASN.1.
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	case *rsa.PrivateKey:
		if sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:]); err != nil {
			return "", fmt.Errorf("signing the JWT: %w", err)
		}
	}
	return signing + "." + b64.EncodeToString(sig), nil
}

func ecCoordinates(k *ecdsa.PublicKey) (x, y []byte, err error) {
	// Bytes returns the uncompressed point 0x04 || X || Y.
	b, err := k.Bytes()
	if err != nil || len(b) != 65 {
		return nil, nil, fmt.Errorf("%w: the ECDSA public key does not encode", ErrKey)
	}
	return b[1:33], b[33:], nil
}

// parseJWK reads a private JWK. Errors name the member that is wrong.
func parseJWK(raw []byte) (crypto.Signer, error) {
	var j JWK
	if err := json.Unmarshal(raw, &j); err != nil {
		return nil, fmt.Errorf("%w: a JSON value that is not a JWK object", ErrKey)
	}
	if j.D == "" {
		return nil, fmt.Errorf("%w: a public JWK (no \"d\"); the value must be the private key", ErrKey)
	}
	dec := func(name, s string) ([]byte, error) {
		b, err := b64.DecodeString(s)
		if err != nil || len(b) == 0 {
			return nil, fmt.Errorf("%w: JWK member %q is not base64url", ErrKey, name)
		}
		return b, nil
	}
	switch j.Kty {
	case "EC":
		if j.Crv != "P-256" {
			return nil, fmt.Errorf("%w: a JWK on curve %q; want P-256", ErrKey, printable(j.Crv))
		}
		d, err := dec("d", j.D)
		if err != nil {
			return nil, err
		}
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), d)
		if err != nil {
			return nil, fmt.Errorf("%w: JWK member \"d\" is not a P-256 private scalar", ErrKey)
		}
		if pub, _ := PublicJWK(k); j.X != "" && (pub.X != j.X || pub.Y != j.Y) {
			return nil, fmt.Errorf("%w: the JWK's \"x\" and \"y\" do not match its \"d\"", ErrKey)
		}
		return k, nil
	case "RSA":
		var parts [5][]byte
		for i, m := range []struct{ name, v string }{{"n", j.N}, {"e", j.E}, {"d", j.D}, {"p", j.P}, {"q", j.Q}} {
			b, err := dec(m.name, m.v)
			if err != nil {
				return nil, err
			}
			parts[i] = b
		}
		e := new(big.Int).SetBytes(parts[1])
		if !e.IsInt64() || e.Int64() > 1<<31 {
			return nil, fmt.Errorf("%w: JWK member \"e\" is too large", ErrKey)
		}
		k := &rsa.PrivateKey{
			PublicKey: rsa.PublicKey{N: new(big.Int).SetBytes(parts[0]), E: int(e.Int64())},
			D:         new(big.Int).SetBytes(parts[2]),
			Primes:    []*big.Int{new(big.Int).SetBytes(parts[3]), new(big.Int).SetBytes(parts[4])},
		}
		if err := k.Validate(); err != nil {
			return nil, fmt.Errorf("%w: the JWK's RSA members are inconsistent", ErrKey)
		}
		k.Precompute()
		if _, err := AlgOf(k); err != nil {
			return nil, err
		}
		return k, nil
	}
	return nil, fmt.Errorf("%w: a JWK of kty %q; want EC or RSA", ErrKey, printable(j.Kty))
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t') {
		b = b[1:]
	}
	return b
}

// printable shortens s for an error and drops anything but plain ASCII.
func printable(s string) string {
	out := make([]byte, 0, min(len(s), 32))
	for i := 0; i < len(s) && len(out) < 32; i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			out = append(out, c)
		}
	}
	return string(out)
}

// AssertionType is the client_assertion_type of a JWT client assertion
// (RFC 7523 §2.2).
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// ClientAssertion returns a JWT that authenticates clientID at an
// authorization server (RFC 7523 §3, OpenID Connect Core §9
// private_key_jwt): iss = sub = clientID, aud = audience (the token
// endpoint), a random jti, iat = now and exp = now + lifetime, signed by
// key under kid.
func ClientAssertion(key crypto.Signer, kid, clientID, audience string, now time.Time, lifetime time.Duration) (string, error) {
	jti := make([]byte, 18)
	if _, err := rand.Read(jti); err != nil {
		return "", err
	}
	return Sign(key, kid, map[string]any{
		"iss": clientID,
		"sub": clientID,
		"aud": audience,
		"jti": b64.EncodeToString(jti),
		"iat": now.Unix(),
		"exp": now.Add(lifetime).Unix(),
	})
}
