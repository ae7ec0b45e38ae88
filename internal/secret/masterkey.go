package secret

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"runtime"
	"strings"
)

// Environment variables read by LoadMasterKey.
const (
	// EnvMasterKey holds the active master key, base64 of 32 bytes.
	EnvMasterKey = "ROTATOR_MASTER_KEY"
	// EnvMasterKeyFile names a file (mode 0600 or stricter) holding the
	// active master key in base64.
	EnvMasterKeyFile = "ROTATOR_MASTER_KEY_FILE"
	// EnvMasterKeyPrevious holds comma-separated base64 keys that are no
	// longer used to seal but still open values sealed under them.
	EnvMasterKeyPrevious = "ROTATOR_MASTER_KEY_PREVIOUS"
)

// ErrNoMasterKey is returned (wrapped) by LoadMasterKey when no master key is
// configured and none may be generated.
var ErrNoMasterKey = errors.New("no master key configured")

// MasterKeyOptions configures LoadMasterKey.
type MasterKeyOptions struct {
	// LookupEnv reads an environment variable; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// GenerateAt, when non-empty and neither ROTATOR_MASTER_KEY nor
	// ROTATOR_MASTER_KEY_FILE is set, is a key file path: it is read if it
	// exists and created (mode 0600) with a new random key otherwise. Its
	// directory must exist.
	GenerateAt string
	// NoCreate reads the GenerateAt file if it exists but never creates
	// it: the caller found values sealed already, which a new key would not
	// open. A missing file is then ErrNoMasterKey.
	NoCreate bool
}

// MasterKeyOrigin says where the active master key came from.
type MasterKeyOrigin string

// Master key origins.
const (
	// MasterKeyFromEnv means ROTATOR_MASTER_KEY.
	MasterKeyFromEnv MasterKeyOrigin = "env"
	// MasterKeyFromFile means the file named by ROTATOR_MASTER_KEY_FILE.
	MasterKeyFromFile MasterKeyOrigin = "file"
	// MasterKeyFromGeneratedFile means the MasterKeyOptions.GenerateAt file,
	// created by this call or an earlier one.
	MasterKeyFromGeneratedFile MasterKeyOrigin = "generated-file"
)

// MasterKeySource describes where LoadMasterKey found the keys, for the
// caller to log. It holds no key material.
type MasterKeySource struct {
	// Origin is where the active key came from.
	Origin MasterKeyOrigin
	// Path is the key file for MasterKeyFromFile and
	// MasterKeyFromGeneratedFile.
	Path string
	// Generated is true when this call created the GenerateAt file with a
	// new key; the caller should warn that the key must be backed up and
	// that a production deployment should configure one.
	Generated bool
	// ActiveKeyID is the id of the active key.
	ActiveKeyID string
	// PreviousKeyIDs are the ids of the ROTATOR_MASTER_KEY_PREVIOUS keys.
	PreviousKeyIDs []string
}

// LoadMasterKey builds the keyring from ROTATOR_MASTER_KEY or
// ROTATOR_MASTER_KEY_FILE (exactly one), plus ROTATOR_MASTER_KEY_PREVIOUS.
// With neither set it falls back to opts.GenerateAt, and without that it
// fails with ErrNoMasterKey. A variable that is set but empty is an error,
// not "unset": silently generating a key would strand data sealed under the
// one the operator meant to give. Errors never contain key material.
func LoadMasterKey(opts MasterKeyOptions) (Keyring, MasterKeySource, error) {
	lookup := opts.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	keyEnv, haveKey := lookup(EnvMasterKey)
	fileEnv, haveFile := lookup(EnvMasterKeyFile)

	// The previous keys first: a malformed one is an error even when no
	// active key is configured.
	var previous []Key
	if prev, ok := lookup(EnvMasterKeyPrevious); ok {
		for i, s := range strings.Split(prev, ",") {
			if strings.TrimSpace(s) == "" {
				continue
			}
			k, err := ParseKey(s)
			if err != nil {
				return Keyring{}, MasterKeySource{}, fmt.Errorf("%s entry %d: %w", EnvMasterKeyPrevious, i+1, err)
			}
			previous = append(previous, k)
		}
	}

	var (
		active Key
		src    MasterKeySource
		err    error
	)
	switch {
	case haveKey && haveFile:
		return Keyring{}, MasterKeySource{}, fmt.Errorf("both %s and %s are set; set only one", EnvMasterKey, EnvMasterKeyFile)
	case haveKey:
		if strings.TrimSpace(keyEnv) == "" {
			return Keyring{}, MasterKeySource{}, fmt.Errorf("%s is set but empty; it must be base64 of 32 random bytes, e.g. `openssl rand -base64 32`", EnvMasterKey)
		}
		if active, err = ParseKey(keyEnv); err != nil {
			return Keyring{}, MasterKeySource{}, fmt.Errorf("%s: %w", EnvMasterKey, err)
		}
		src.Origin = MasterKeyFromEnv
	case haveFile:
		if fileEnv == "" {
			return Keyring{}, MasterKeySource{}, fmt.Errorf("%s is set but empty; it must name a file (mode 0600) holding base64 of 32 random bytes", EnvMasterKeyFile)
		}
		if active, err = readKeyFile(fileEnv); err != nil {
			return Keyring{}, MasterKeySource{}, fmt.Errorf("%s: %w", EnvMasterKeyFile, err)
		}
		src.Origin, src.Path = MasterKeyFromFile, fileEnv
	case opts.GenerateAt != "" && opts.NoCreate:
		if _, err := os.Stat(opts.GenerateAt); errors.Is(err, fs.ErrNotExist) {
			return Keyring{}, MasterKeySource{}, fmt.Errorf("%w: neither %s nor %s is set, and the key file %s does not exist",
				ErrNoMasterKey, EnvMasterKey, EnvMasterKeyFile, opts.GenerateAt)
		}
		if active, err = readKeyFile(opts.GenerateAt); err != nil {
			return Keyring{}, MasterKeySource{}, fmt.Errorf("existing generated %w", err)
		}
		src.Origin, src.Path = MasterKeyFromGeneratedFile, opts.GenerateAt
	case opts.GenerateAt != "":
		if active, src.Generated, err = generateKeyFile(opts.GenerateAt); err != nil {
			return Keyring{}, MasterKeySource{}, err
		}
		src.Origin, src.Path = MasterKeyFromGeneratedFile, opts.GenerateAt
	default:
		return Keyring{}, MasterKeySource{}, fmt.Errorf("%w: set %s to base64 of 32 random bytes (e.g. `openssl rand -base64 32`), or %s to the path of a file (mode 0600) holding it",
			ErrNoMasterKey, EnvMasterKey, EnvMasterKeyFile)
	}

	var older []Key
	for _, k := range previous {
		if k.ID != active.ID {
			older = append(older, k)
			src.PreviousKeyIDs = append(src.PreviousKeyIDs, k.ID)
		}
	}
	kr, err := NewKeyring(active, older...)
	if err != nil {
		return Keyring{}, MasterKeySource{}, err
	}
	src.ActiveKeyID = active.ID
	return kr, src, nil
}

// readKeyFile reads a base64 key from a regular file that neither group
// nor others may access.
func readKeyFile(path string) (Key, error) {
	f, err := os.Open(path)
	if err != nil {
		return Key{}, fmt.Errorf("master key file: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return Key{}, fmt.Errorf("master key file: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return Key{}, fmt.Errorf("master key file %s: not a regular file", path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 && runtime.GOOS != "windows" {
		return Key{}, fmt.Errorf("master key file %s: mode is %04o but group and others must have no access (chmod 600 %s)", path, perm, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, 1024))
	if err != nil {
		return Key{}, fmt.Errorf("master key file %s: %w", path, err)
	}
	defer clear(b)
	k, err := ParseKey(string(b))
	if err != nil {
		return Key{}, fmt.Errorf("master key file %s: %w", path, err)
	}
	return k, nil
}

// generateKeyFile reads the key file at path, or creates it (mode 0600,
// O_EXCL so that an existing key is never overwritten) with a new key.
// generated reports whether it was created.
func generateKeyFile(path string) (k Key, generated bool, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		k, err := readKeyFile(path)
		if err != nil {
			return Key{}, false, fmt.Errorf("existing generated %w", err)
		}
		return k, false, nil
	}
	if err != nil {
		return Key{}, false, fmt.Errorf("create generated master key file: %w", err)
	}
	k = GenerateKey()
	_, err = f.WriteString(k.encode() + "\n")
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return Key{}, false, fmt.Errorf("write generated master key file %s: %w", path, err)
	}
	return k, true, nil
}
