package jose

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/internal/secret"
)

// TestThumbprintRFC7638 checks the example of RFC 7638 §3.1.
func TestThumbprintRFC7638(t *testing.T) {
	j := JWK{Kty: "RSA", E: "AQAB",
		N: "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"}
	if got, want := Thumbprint(j), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"; got != want {
		t.Fatalf("Thumbprint = %s, want %s", got, want)
	}
}

// verify checks a compact JWS with the standard library alone.
func verify(t *testing.T, token string, pub crypto.PublicKey) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if len(sig) != 64 || !ecdsa.Verify(k, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
			t.Fatal("ES256 signature does not verify")
		}
	case *rsa.PublicKey:
		if err := rsa.VerifyPKCS1v15(k, crypto.SHA256, sum[:], sig); err != nil {
			t.Fatalf("RS256 signature does not verify: %v", err)
		}
	}
	var claims map[string]any
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	if err := json.Unmarshal(b, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func TestRoundTrip(t *testing.T) {
	for _, alg := range []string{ES256, RS256} {
		t.Run(alg, func(t *testing.T) {
			key, err := GenerateKey(alg)
			if err != nil {
				t.Fatal(err)
			}
			pub, err := PublicJWK(key)
			if err != nil || pub.Alg != alg || pub.Kid == "" || pub.D != "" {
				t.Fatalf("PublicJWK = %+v, %v", pub, err)
			}
			pemV, err := EncodePEM(key)
			if err != nil {
				t.Fatal(err)
			}
			jwkV, err := PrivateJWK(key)
			if err != nil {
				t.Fatal(err)
			}
			for name, v := range map[string]secret.Value{"pem": pemV, "jwk": jwkV} {
				back, err := ParsePrivateKey(v)
				if err != nil {
					t.Fatalf("%s: ParsePrivateKey: %v", name, err)
				}
				if j, _ := PublicJWK(back); j.Kid != pub.Kid {
					t.Fatalf("%s: kid %s after the round trip, want %s", name, j.Kid, pub.Kid)
				}
				tok, err := Sign(back, pub.Kid, map[string]any{"iss": "me"})
				if err != nil {
					t.Fatal(err)
				}
				if c := verify(t, tok, key.Public()); c["iss"] != "me" {
					t.Fatalf("claims = %v", c)
				}
			}
		})
	}
}

func TestParseErrorsHoldNoKey(t *testing.T) {
	canary := "canary-MIIEvQIBADANBgkqhkiG9w0BAQEFAASC"
	for name, v := range map[string]string{
		"garbage":    canary,
		"pem type":   "-----BEGIN CERTIFICATE-----\n" + base64.StdEncoding.EncodeToString([]byte(canary)) + "\n-----END CERTIFICATE-----\n",
		"public jwk": `{"kty":"EC","crv":"P-256","x":"` + canary + `"}`,
		"bad d":      `{"kty":"EC","crv":"P-256","d":"` + canary + `"}`,
	} {
		_, err := ParsePrivateKey(secret.NewString(v))
		if err == nil {
			t.Fatalf("%s: no error", name)
		}
		if strings.Contains(err.Error(), "canary") || strings.Contains(err.Error(), "MIIE") {
			t.Fatalf("%s: error repeats the value: %v", name, err)
		}
	}
}
