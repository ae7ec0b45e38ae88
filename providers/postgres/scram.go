package postgres

import (
	"crypto/hmac"
	"crypto/md5" //nolint:gosec // G501: only to recognise md5 verifiers that older servers stored
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// scramIterations matches PostgreSQL's default scram_iterations; it is the
// default of the provider's scram_iterations.
const scramIterations = 4096

// maxSCRAMIterations bounds the iteration count rotator writes and accepts
// in a stored verifier, so that a tampered pg_authid row cannot make a
// verification burn minutes of CPU. PostgreSQL's own maximum is INT_MAX;
// its default is 4096.
const maxSCRAMIterations = 1 << 20

// scramVerifier returns the SCRAM-SHA-256 verifier PostgreSQL stores for
// password (RFC 5802, RFC 7677), with a fresh random salt.
func scramVerifier(password string, iterations int) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("reading randomness: %w", err)
	}
	return scramVerifierWith(password, salt, iterations)
}

func scramVerifierWith(password string, salt []byte, iterations int) (string, error) {
	stored, server, err := scramKeys(password, salt, iterations)
	if err != nil {
		return "", err
	}
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored), b64(server)), nil
}

func scramKeys(password string, salt []byte, iterations int) (stored, server []byte, err error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return nil, nil, fmt.Errorf("deriving the SCRAM key: %w", err)
	}
	mac := func(key []byte, msg string) []byte {
		h := hmac.New(sha256.New, key)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	clientKey := mac(salted, "Client Key")
	sum := sha256.Sum256(clientKey)
	return sum[:], mac(salted, "Server Key"), nil
}

// scramStored is a parsed SCRAM-SHA-256 verifier:
// SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>.
type scramStored struct {
	iterations        int
	salt              []byte
	storedKey, server []byte
}

// errNotSCRAM is returned by parseSCRAM for a value that is not a
// SCRAM-SHA-256 verifier (an md5 hash, a plaintext password of an old
// server, or garbage). It never quotes the value.
var errNotSCRAM = errors.New("not a SCRAM-SHA-256 verifier")

func parseSCRAM(stored string) (scramStored, error) {
	rest, ok := strings.CutPrefix(stored, "SCRAM-SHA-256$")
	if !ok {
		return scramStored{}, errNotSCRAM
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return scramStored{}, errNotSCRAM
	}
	iterStr, saltB64, ok1 := strings.Cut(params, ":")
	storedB64, serverB64, ok2 := strings.Cut(keys, ":")
	iterations, err := strconv.Atoi(iterStr)
	salt, err2 := base64.StdEncoding.DecodeString(saltB64)
	storedKey, err3 := base64.StdEncoding.DecodeString(storedB64)
	server, err4 := base64.StdEncoding.DecodeString(serverB64)
	if !ok1 || !ok2 || err != nil || err2 != nil || err3 != nil || err4 != nil ||
		iterations <= 0 || len(salt) == 0 || len(storedKey) != sha256.Size || len(server) != sha256.Size {
		return scramStored{}, errNotSCRAM
	}
	if iterations > maxSCRAMIterations {
		return scramStored{}, fmt.Errorf("the SCRAM-SHA-256 verifier has %d iterations, more than the %d rotator accepts", iterations, maxSCRAMIterations)
	}
	return scramStored{iterations: iterations, salt: salt, storedKey: storedKey, server: server}, nil
}

// matches derives StoredKey and ServerKey from password with the
// verifier's salt and iteration count and compares both (in constant
// time): the check the server makes at a SCRAM login, less the exchange.
func (s scramStored) matches(password string) bool {
	stored, server, err := scramKeys(password, s.salt, s.iterations)
	if err != nil {
		return false
	}
	return subtle.ConstantTimeCompare(stored, s.storedKey)&subtle.ConstantTimeCompare(server, s.server) == 1
}

// verifierMatches reports whether a pg_authid.rolpassword value is the
// password of role: a SCRAM-SHA-256 verifier, an md5 hash, or (from very
// old servers) the password itself.
func verifierMatches(stored, role, password string) bool {
	switch {
	case strings.HasPrefix(stored, "SCRAM-SHA-256$"):
		v, err := parseSCRAM(stored)
		return err == nil && v.matches(password)
	case strings.HasPrefix(stored, "md5") && len(stored) == 35:
		sum := md5.Sum([]byte(password + role)) //nolint:gosec // G401: PostgreSQL's md5 verifier format
		return subtle.ConstantTimeCompare([]byte(stored[3:]), []byte(hex.EncodeToString(sum[:]))) == 1
	}
	return subtle.ConstantTimeCompare([]byte(stored), []byte(password)) == 1
}
