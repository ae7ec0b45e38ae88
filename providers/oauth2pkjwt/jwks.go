package oauth2pkjwt

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"github.com/rotatorhq/rotator/internal/jose"
)

// fileLocks serializes the read-modify-write of each JWKS file within the
// process (several provider instances may name one file).
var fileLocks sync.Map // path -> *sync.Mutex

func lockFile(path string) func() {
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	m, _ := fileLocks.LoadOrStore(abs, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// readJWKS reads a JWKS file; a missing file is an empty set.
func readJWKS(path string) (jose.JWKS, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return jose.JWKS{Keys: []jose.JWK{}}, nil
	}
	if err != nil {
		return jose.JWKS{}, fmt.Errorf("reading jwks_file %s: %w", path, err)
	}
	var set jose.JWKS
	if err := json.Unmarshal(raw, &set); err != nil {
		return jose.JWKS{}, fmt.Errorf("jwks_file %s is not a JSON Web Key Set ({\"keys\": [...]}); fix or remove it", path)
	}
	for _, k := range set.Keys {
		if k.D != "" {
			// Never rewrite (and so never keep publishing) a private key.
			return jose.JWKS{}, fmt.Errorf("jwks_file %s holds a private key (kid %q); it must hold public keys only: remove that key", path, k.Kid)
		}
	}
	if set.Keys == nil {
		set.Keys = []jose.JWK{}
	}
	return set, nil
}

// writeJWKS replaces the file atomically: a temporary file in the same
// directory, synced, then renamed over it. The set is public (mode 0644).
func writeJWKS(path string, set jose.JWKS) error {
	raw, err := json.MarshalIndent(set, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating the directory of jwks_file %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("writing jwks_file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(raw, '\n')); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("writing jwks_file %s: %w", path, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("writing jwks_file %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		_ = tmp.Close()
		return fmt.Errorf("writing jwks_file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing jwks_file %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("replacing jwks_file %s: %w", path, err)
	}
	return nil
}

// addKey publishes pub in the file (kept when already there) and reports
// whether it was added now.
func addKey(path string, pub jose.JWK) (bool, error) {
	defer lockFile(path)()
	set, err := readJWKS(path)
	if err != nil {
		return false, err
	}
	if slices.ContainsFunc(set.Keys, func(k jose.JWK) bool { return k.Kid == pub.Kid }) {
		return false, nil
	}
	set.Keys = append(set.Keys, pub.Public())
	return true, writeJWKS(path, set)
}

// removeKey withdraws the key kid from the file; a key (or file) that is
// not there is success.
func removeKey(path, kid string) error {
	defer lockFile(path)()
	set, err := readJWKS(path)
	if err != nil {
		return err
	}
	n := len(set.Keys)
	set.Keys = slices.DeleteFunc(set.Keys, func(k jose.JWK) bool { return k.Kid == kid })
	if len(set.Keys) == n {
		return nil
	}
	return writeJWKS(path, set)
}

// hasKey reports whether the file publishes kid.
func hasKey(path, kid string) (bool, error) {
	defer lockFile(path)()
	set, err := readJWKS(path)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(set.Keys, func(k jose.JWK) bool { return k.Kid == kid }), nil
}
