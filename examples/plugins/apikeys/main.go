// Command apikeys is an example plugin for rotator's exec provider (protocol
// rotator.exec/v1, see docs/plugins.md). It manages the API keys of a
// service that keeps its valid keys in a JSON file: the service (an MCP
// server, say) accepts a key when the file lists its SHA-256 and it has not
// expired. Several keys may be valid at once, so the plugin declares
// overlap, and removing a key revokes it.
//
// Configure it as an exec provider; rotator appends the step name to the
// command:
//
//	providers:
//	  notes-keys:
//	    type: exec
//	    command: [/usr/local/libexec/rotator/apikeys, --file, /var/lib/notes-mcp/keys.json]
//	    timeout: 10s
//	    overlap: true
//	    revocable: true
//
// Credential settings it understands: prefix (default "ak_") and ttl (a Go
// duration such as 720h; none by default).
//
// The file holds hashes only, never keys:
//
//	{"keys": [{"id": "k_3f2a9c0b1d4e", "sha256": "…", "credential": "notes-api-key",
//	           "created_at": "2026-11-25T10:00:00Z", "expires_at": "2026-12-25T10:00:00Z"}]}
package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

const protocol = "rotator.exec/v1"

// request is what rotator writes on stdin.
type request struct {
	Protocol     string            `json:"protocol"`
	Step         string            `json:"step"`
	CredentialID string            `json:"credential_id"`
	VersionID    string            `json:"version_id"`
	Scope        []string          `json:"scope"`
	Settings     map[string]any    `json:"settings"`
	Value        string            `json:"value"`
	Metadata     map[string]string `json:"metadata"`
	ExpiresAt    string            `json:"expires_at"`
}

// response is what the plugin prints on stdout.
type response struct {
	Value        string            `json:"value,omitempty"`
	ExpiresAt    string            `json:"expires_at,omitempty"`
	GrantedScope []string          `json:"granted_scope,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	Evidence     map[string]string `json:"evidence,omitempty"`
	Error        string            `json:"error,omitempty"`
	Permanent    bool              `json:"permanent,omitempty"`
}

// failure is an error the plugin reports to rotator.
type failure struct {
	msg       string
	permanent bool
}

func (f *failure) Error() string { return f.msg }

func fail(permanent bool, format string, args ...any) error {
	return &failure{msg: fmt.Sprintf(format, args...), permanent: permanent}
}

func main() { os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr)) }

// run is the whole plugin: the step is the last argument.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	resp, err := handle(args, stdin)
	enc := json.NewEncoder(stdout)
	if err != nil {
		var f *failure
		if !errors.As(err, &f) {
			f = &failure{msg: err.Error()}
		}
		fmt.Fprintf(stderr, "apikeys: %s\n", f.msg) // never a key: messages name key ids only
		_ = enc.Encode(response{Error: f.msg, Permanent: f.permanent})
		return 1
	}
	if err := enc.Encode(resp); err != nil {
		fmt.Fprintf(stderr, "apikeys: writing the response: %v\n", err)
		return 1
	}
	return 0
}

func handle(args []string, stdin io.Reader) (response, error) {
	if len(args) == 0 {
		return response{}, fail(true, "no step given; rotator passes mint, activate, verify or revoke as the last argument")
	}
	step := args[len(args)-1]
	path, err := fileFlag(args[:len(args)-1])
	if err != nil {
		return response{}, err
	}
	var req request
	if err := json.NewDecoder(io.LimitReader(stdin, 1<<20)).Decode(&req); err != nil {
		return response{}, fail(true, "stdin is not a JSON request")
	}
	if req.Protocol != protocol {
		return response{}, fail(true, "unsupported protocol %q; this plugin speaks %s", req.Protocol, protocol)
	}
	if req.Step != step {
		return response{}, fail(true, "the step argument %q and the request's step %q differ", step, req.Step)
	}
	switch step {
	case "mint":
		return mint(req)
	case "activate":
		return activate(path, req)
	case "verify":
		return verify(path, req)
	case "revoke":
		return revoke(path, req)
	}
	return response{}, fail(true, "unknown step %q", step)
}

// fileFlag reads --file PATH (or --file=PATH) from the arguments before
// the step.
func fileFlag(args []string) (string, error) {
	var path string
	for i := 0; i < len(args); i++ {
		switch a := args[i]; {
		case a == "--file" && i+1 < len(args):
			path = args[i+1]
			i++
		case strings.HasPrefix(a, "--file="):
			path = strings.TrimPrefix(a, "--file=")
		default:
			return "", fail(true, "unknown argument %q; usage: apikeys --file PATH STEP", a)
		}
	}
	if path == "" {
		return "", fail(true, "no key file: add --file PATH to the provider's command")
	}
	return path, nil
}

// key is one entry of the key file.
type key struct {
	ID         string `json:"id"`
	SHA256     string `json:"sha256"`
	Credential string `json:"credential,omitempty"`
	CreatedAt  string `json:"created_at"`
	ExpiresAt  string `json:"expires_at,omitempty"`
}

type keyFile struct {
	Keys []key `json:"keys"`
}

func digest(value string) string {
	sum := sha256.Sum256([]byte(value))
	return hex.EncodeToString(sum[:])
}

func keyID(value string) string { return "k_" + digest(value)[:12] }

const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// mint makes a new key. It changes nothing: the key becomes valid at
// activate, so a mint that is never activated leaves nothing behind.
func mint(req request) (response, error) {
	prefix := "ak_"
	if p, ok := req.Settings["prefix"].(string); ok {
		prefix = p
	}
	b := make([]byte, 40)
	max := big.NewInt(int64(len(alphabet)))
	for i := range b {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return response{}, fmt.Errorf("reading randomness: %w", err)
		}
		b[i] = alphabet[n.Int64()]
	}
	value := prefix + string(b)
	resp := response{Value: value, GrantedScope: req.Scope, Metadata: map[string]string{"key_id": keyID(value)}}
	if s, ok := req.Settings["ttl"].(string); ok && s != "" {
		ttl, err := time.ParseDuration(s)
		if err != nil || ttl <= 0 {
			return response{}, fail(true, "settings.ttl must be a positive duration such as 720h")
		}
		resp.ExpiresAt = time.Now().Add(ttl).UTC().Format(time.RFC3339)
	}
	return resp, nil
}

// activate adds the key to the file; a key already there is success.
func activate(path string, req request) (response, error) {
	if req.Value == "" {
		return response{}, fail(true, "activate without a value")
	}
	id := keyID(req.Value)
	err := update(path, func(f *keyFile) bool {
		h := digest(req.Value)
		if slices.ContainsFunc(f.Keys, func(k key) bool { return k.SHA256 == h }) {
			return false
		}
		f.Keys = append(f.Keys, key{ID: id, SHA256: h, Credential: req.CredentialID, CreatedAt: time.Now().UTC().Format(time.RFC3339), ExpiresAt: req.ExpiresAt})
		return true
	})
	if err != nil {
		return response{}, err
	}
	return response{Metadata: map[string]string{"key_id": id}}, nil
}

// verify checks the key the way the service does: listed and unexpired.
func verify(path string, req request) (response, error) {
	f, err := load(path)
	if err != nil {
		return response{}, err
	}
	id, h := keyID(req.Value), digest(req.Value)
	i := slices.IndexFunc(f.Keys, func(k key) bool { return k.SHA256 == h })
	if i < 0 {
		return response{}, fail(false, "key %s is not in %s", id, path)
	}
	if exp := f.Keys[i].ExpiresAt; exp != "" {
		t, err := time.Parse(time.RFC3339, exp)
		if err != nil || !t.After(time.Now()) {
			return response{}, fail(false, "key %s has expired (%s)", id, exp)
		}
	}
	return response{GrantedScope: req.Scope, Evidence: map[string]string{"key_id": id, "check": "listed and unexpired in the key file"}}, nil
}

// revoke removes the key; a key that is not there is success.
func revoke(path string, req request) (response, error) {
	if req.Value == "" {
		return response{}, nil
	}
	h := digest(req.Value)
	err := update(path, func(f *keyFile) bool {
		n := len(f.Keys)
		f.Keys = slices.DeleteFunc(f.Keys, func(k key) bool { return k.SHA256 == h })
		return len(f.Keys) != n
	})
	return response{}, err
}

func load(path string) (*keyFile, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &keyFile{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	var f keyFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fail(true, "%s is not a key file; fix or remove it", path)
	}
	return &f, nil
}

// update changes the key file under an exclusive lock and, when change
// reports a change, replaces it atomically (write, fsync, rename).
func update(path string, change func(*keyFile) bool) error {
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("opening the lock file: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("locking %s: %w", path, err)
	}
	f, err := load(path)
	if err != nil {
		return err
	}
	if !change(f) {
		return nil
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".keys-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}
