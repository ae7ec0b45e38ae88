// Package file is the target that publishes credential values into a local
// file (dotenv, JSON or raw), which stdio MCP servers and their launchers
// read. Writes are atomic (write a temporary file, fsync, rename), the file
// is created with mode 0600, and several credentials may share one file,
// each under its own key.
package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rotatorhq/rotator/targets"
)

// Type is the target type name.
const Type = "file"

// Factory returns the registry entry of the file target.
func Factory() targets.Factory {
	return targets.Factory{
		Description: "a local dotenv, JSON or raw file, written atomically with mode 0600",
		Validate:    Validate,
		ValidateKey: ValidateKey,
		New: func(_ context.Context, env targets.Env) (targets.Target, error) {
			cfg, errs := parse(env.Settings)
			if len(errs) > 0 {
				return nil, fmt.Errorf("file: %w: %w", targets.ErrPermanent, errs[0])
			}
			return New(cfg), nil
		},
	}
}

// Target writes values into one file.
type Target struct {
	cfg Config
}

// New returns a file target.
func New(cfg Config) *Target { return &Target{cfg: cfg} }

// pathLocks serialises writers of the same file inside this process (a
// one-slot channel, so waiting honours the context); flock serialises them
// across processes.
var pathLocks sync.Map // string → chan struct{}

// Stage implements targets.Target. A file has no pending slot that readers
// ignore, so staging only checks that the file can be written (a failure
// here rolls the run back before anything changed) and then reports
// targets.ErrSkipped: the value is written at Promote.
func (t *Target) Stage(ctx context.Context, _ targets.StageRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	dir := filepath.Dir(t.cfg.Path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("file target: creating directory %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".rotator-stage-*")
	if err != nil {
		return fmt.Errorf("file target: directory %s is not writable: %w", dir, err)
	}
	name := f.Name()
	_ = f.Close()
	if err := os.Remove(name); err != nil {
		return fmt.Errorf("file target: %w", err)
	}
	return fmt.Errorf("%w: a file has no pending slot; checked that %s is writable, the value is written at promote", targets.ErrSkipped, dir)
}

// Promote implements targets.Target: it rewrites the file with the new value
// under the binding's key, keeping every other key, atomically.
func (t *Target) Promote(ctx context.Context, req targets.PromoteRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	key := req.Key
	if key == "" {
		key = defaultKey(req.CredentialID)
	}
	abs, unlock, err := t.lock(ctx)
	if err != nil {
		return err
	}
	defer unlock()

	var content []byte
	switch t.cfg.Format {
	case FormatRaw:
		content = req.Value.Reveal()
	case FormatJSON, FormatDotenv:
		entries, err := t.read(abs)
		if err != nil {
			return err
		}
		entries[key] = req.Value.RevealString()
		content, err = t.encode(entries)
		if err != nil {
			return err
		}
	}
	defer clear(content)
	return writeAtomic(abs, content, fs.FileMode(t.cfg.Mode))
}

// lock takes the file's locks, in this process and across processes, and
// returns its absolute path and the function that releases them.
func (t *Target) lock(ctx context.Context) (string, func(), error) {
	abs, err := filepath.Abs(t.cfg.Path)
	if err != nil {
		return "", nil, fmt.Errorf("file target: %w", err)
	}
	v, _ := pathLocks.LoadOrStore(abs, make(chan struct{}, 1))
	sem, ok := v.(chan struct{})
	if !ok {
		return "", nil, fmt.Errorf("file target: lock of %s has type %T", abs, v)
	}
	select {
	case sem <- struct{}{}:
	case <-ctx.Done():
		return "", nil, fmt.Errorf("file target: waiting for %s: %w", abs, ctx.Err())
	}
	unlock, err := lockFile(ctx, abs+".lock")
	if err != nil {
		<-sem
		return "", nil, err
	}
	return abs, func() { unlock(); <-sem }, nil
}

func (t *Target) read(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("file target: reading %s: %w", path, err)
	}
	defer clear(data)
	entries := map[string]string{}
	if t.cfg.Format == FormatJSON {
		if len(bytes.TrimSpace(data)) == 0 {
			return entries, nil
		}
		if err := json.Unmarshal(data, &entries); err != nil {
			// The error text of encoding/json can quote the input: do not wrap it.
			return nil, fmt.Errorf("file target: %s is not a JSON object of strings; fix or remove it", path)
		}
		return entries, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		s = strings.TrimPrefix(s, "export ")
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return nil, fmt.Errorf("file target: %s:%d is not a KEY=value line; fix or remove it", path, line)
		}
		entries[strings.TrimSpace(k)] = unquote(strings.TrimSpace(v))
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("file target: reading %s: %w", path, err)
	}
	return entries, nil
}

func (t *Target) encode(entries map[string]string) ([]byte, error) {
	if t.cfg.Format == FormatJSON {
		b, err := json.MarshalIndent(entries, "", "  ")
		if err != nil {
			return nil, fmt.Errorf("file target: encoding JSON: %w", err)
		}
		return append(b, '\n'), nil
	}
	var buf bytes.Buffer
	buf.WriteString("# Written by rotator; do not edit: changes are overwritten at the next rotation.\n")
	for _, k := range slices.Sorted(maps.Keys(entries)) {
		buf.WriteString(k)
		buf.WriteByte('=')
		buf.WriteString(quote(entries[k]))
		buf.WriteByte('\n')
	}
	return buf.Bytes(), nil
}

// quote renders a dotenv value: bare when it is plain, single-quoted
// otherwise (generated secrets never contain a single quote or newline, but
// other values might; those are double-quoted with escapes).
func quote(v string) string {
	plain := true
	for _, r := range v {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_-./:+@%^~,", r)) {
			plain = false
			break
		}
	}
	if plain {
		return v
	}
	if !strings.ContainsAny(v, "'\n\r") {
		return "'" + v + "'"
	}
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\r", `\r`, "$", `\$`)
	return `"` + r.Replace(v) + `"`
}

func unquote(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1]
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		r := strings.NewReplacer(`\\`, `\`, `\"`, `"`, `\n`, "\n", `\r`, "\r", `\$`, "$")
		return r.Replace(v[1 : len(v)-1])
	}
	return v
}

func defaultKey(credentialID string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(credentialID) {
		if r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	s := b.String()
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		s = "_" + s
	}
	return s
}

func writeAtomic(path string, content []byte, mode fs.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("file target: creating directory %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("file target: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			_ = os.Remove(tmp)
		}
	}()
	if err := f.Chmod(mode); err != nil {
		_ = f.Close()
		return fmt.Errorf("file target: chmod %s: %w", tmp, err)
	}
	if _, err := f.Write(content); err != nil {
		_ = f.Close()
		return fmt.Errorf("file target: writing %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("file target: syncing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("file target: closing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("file target: renaming into %s: %w", path, err)
	}
	ok = true
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// lockFile takes an exclusive flock on path, polling so that a holder that
// hangs cannot block the caller past its context.
func lockFile(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("file target: opening lock %s: %w", path, err)
	}
	for wait := time.Millisecond; ; wait = min(2*wait, 100*time.Millisecond) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("file target: locking %s: %w", path, err)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("file target: %s is locked by another writer: %w", path, ctx.Err())
		case <-time.After(wait):
		}
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		_ = f.Close()
	}, nil
}

var _ targets.Target = (*Target)(nil)
