package secret

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// envOf returns a LookupEnv over a fixed map.
func envOf(env map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

// keyB64 returns the base64 of 32 bytes of b, and the Key.
func keyB64(t *testing.T, b byte) (string, Key) {
	t.Helper()
	raw := bytes.Repeat([]byte{b}, KeySize)
	return base64.StdEncoding.EncodeToString(raw), testKey(t, b)
}

// writeKeyFile writes content to a new file of the given mode.
func writeKeyFile(t *testing.T, content string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "master.key")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // not subject to the umask
		t.Fatal(err)
	}
	return p
}

func TestLoadMasterKey(t *testing.T) {
	t.Parallel()

	b64a, keyA := keyB64(t, 0xa)
	b64b, keyB := keyB64(t, 0xb)
	b64c, keyC := keyB64(t, 0xc)

	t.Run("env", func(t *testing.T) {
		t.Parallel()
		kr, src, err := LoadMasterKey(MasterKeyOptions{LookupEnv: envOf(map[string]string{EnvMasterKey: b64a})})
		if err != nil {
			t.Fatal(err)
		}
		if kr.ActiveKeyID() != keyA.ID || src.ActiveKeyID != keyA.ID || src.Origin != MasterKeyFromEnv || src.Generated {
			t.Fatalf("keyring %v, source %+v; want key %s from env", kr, src, keyA.ID)
		}
	})
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		p := writeKeyFile(t, b64a+"\n", 0o600)
		kr, src, err := LoadMasterKey(MasterKeyOptions{LookupEnv: envOf(map[string]string{EnvMasterKeyFile: p})})
		if err != nil {
			t.Fatal(err)
		}
		if kr.ActiveKeyID() != keyA.ID || src.Origin != MasterKeyFromFile || src.Path != p {
			t.Fatalf("keyring %v, source %+v; want key %s from %s", kr, src, keyA.ID, p)
		}
	})
	t.Run("file 0400", func(t *testing.T) {
		t.Parallel()
		p := writeKeyFile(t, b64a, 0o400)
		if _, _, err := LoadMasterKey(MasterKeyOptions{LookupEnv: envOf(map[string]string{EnvMasterKeyFile: p})}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("previous keys", func(t *testing.T) {
		t.Parallel()
		old := testKeyring(t, keyB)
		keyID, sealed, err := old.Seal("cred", "v1", NewString(sealCanary))
		if err != nil {
			t.Fatal(err)
		}
		kr, src, err := LoadMasterKey(MasterKeyOptions{LookupEnv: envOf(map[string]string{
			EnvMasterKey:         b64a,
			EnvMasterKeyPrevious: " " + b64b + " ,," + b64c + "," + b64a,
		})})
		if err != nil {
			t.Fatal(err)
		}
		if kr.ActiveKeyID() != keyA.ID {
			t.Fatalf("active key %s, want %s", kr.ActiveKeyID(), keyA.ID)
		}
		if got := strings.Join(src.PreviousKeyIDs, ","); got != keyB.ID+","+keyC.ID {
			t.Fatalf("PreviousKeyIDs %s, want %s,%s (the active key left out)", got, keyB.ID, keyC.ID)
		}
		v, err := kr.Open("cred", "v1", keyID, sealed)
		if err != nil || v.RevealString() != sealCanary {
			t.Fatalf("a previous key does not open: %v", err)
		}
		if newID, _, _ := kr.Seal("cred", "v2", v); newID != keyA.ID {
			t.Fatalf("sealed under %s, want the active key %s", newID, keyA.ID)
		}
	})

	secretB64 := base64.StdEncoding.EncodeToString([]byte(sealCanary)) // base64, but not 32 bytes
	errorCases := map[string]struct {
		env      map[string]string
		is       error
		contains []string
	}{
		"nothing configured": {
			env: map[string]string{}, is: ErrNoMasterKey,
			contains: []string{EnvMasterKey, EnvMasterKeyFile, "openssl rand -base64 32"},
		},
		"both configured": {
			env:      map[string]string{EnvMasterKey: b64a, EnvMasterKeyFile: "/x"},
			contains: []string{"only one"},
		},
		"empty env key": {
			env:      map[string]string{EnvMasterKey: " "},
			contains: []string{EnvMasterKey, "empty"},
		},
		"empty file env": {
			env:      map[string]string{EnvMasterKeyFile: ""},
			contains: []string{EnvMasterKeyFile, "empty"},
		},
		"bad env key": {
			env: map[string]string{EnvMasterKey: secretB64}, is: ErrBadKey,
			contains: []string{EnvMasterKey, "base64 of 32 random bytes", "openssl rand -base64 32"},
		},
		"bad previous key": {
			env: map[string]string{EnvMasterKey: b64a, EnvMasterKeyPrevious: b64b + "," + sealCanary}, is: ErrBadKey,
			contains: []string{EnvMasterKeyPrevious, "entry 2"},
		},
		"bad previous key without an active one": {
			env: map[string]string{EnvMasterKeyPrevious: sealCanary}, is: ErrBadKey,
			contains: []string{EnvMasterKeyPrevious, "entry 1"},
		},
		"missing file": {
			env: map[string]string{EnvMasterKeyFile: "/nonexistent/rotator/master.key"}, is: os.ErrNotExist,
			contains: []string{EnvMasterKeyFile, "/nonexistent/rotator/master.key"},
		},
	}
	for name, tt := range errorCases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, _, err := LoadMasterKey(MasterKeyOptions{LookupEnv: envOf(tt.env)})
			if err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error = %v, want %v", err, tt.is)
			}
			for _, c := range tt.contains {
				if !strings.Contains(err.Error(), c) {
					t.Errorf("error %q does not contain %q", err, c)
				}
			}
			for _, secret := range []string{sealCanary, secretB64, b64a, b64b} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error contains key material or input: %v", err)
				}
			}
		})
	}
}

func TestLoadMasterKeyFilePermissions(t *testing.T) {
	t.Parallel()
	if runtime.GOOS == "windows" {
		t.Skip("POSIX permissions only") // never skipped in CI, which runs Linux
	}

	b64a, _ := keyB64(t, 0xa)
	for _, mode := range []os.FileMode{0o640, 0o604, 0o644, 0o660, 0o606, 0o610, 0o601, 0o666} {
		t.Run(mode.String(), func(t *testing.T) {
			t.Parallel()
			p := writeKeyFile(t, b64a, mode)
			_, _, err := LoadMasterKey(MasterKeyOptions{LookupEnv: envOf(map[string]string{EnvMasterKeyFile: p})})
			if err == nil {
				t.Fatalf("mode %04o accepted", mode)
			}
			if !strings.Contains(err.Error(), "chmod 600") || !strings.Contains(err.Error(), p) {
				t.Fatalf("error %q does not name the file and the fix", err)
			}
			if strings.Contains(err.Error(), b64a) {
				t.Fatalf("error contains the key: %v", err)
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		_, _, err := LoadMasterKey(MasterKeyOptions{LookupEnv: envOf(map[string]string{EnvMasterKeyFile: dir})})
		if err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Fatalf("error = %v, want not a regular file", err)
		}
	})
	t.Run("garbage content", func(t *testing.T) {
		t.Parallel()
		p := writeKeyFile(t, sealCanary, 0o600)
		_, _, err := LoadMasterKey(MasterKeyOptions{LookupEnv: envOf(map[string]string{EnvMasterKeyFile: p})})
		if !errors.Is(err, ErrBadKey) || strings.Contains(err.Error(), sealCanary) {
			t.Fatalf("error = %v, want ErrBadKey without the content", err)
		}
	})
}

func TestLoadMasterKeyGenerate(t *testing.T) {
	t.Parallel()

	t.Run("creates then reads", func(t *testing.T) {
		t.Parallel()
		p := filepath.Join(t.TempDir(), "rotator.key")
		opts := MasterKeyOptions{LookupEnv: envOf(nil), GenerateAt: p}
		kr1, src1, err := LoadMasterKey(opts)
		if err != nil {
			t.Fatal(err)
		}
		if !src1.Generated || src1.Origin != MasterKeyFromGeneratedFile || src1.Path != p {
			t.Fatalf("first call source %+v, want generated at %s", src1, p)
		}
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if runtime.GOOS != "windows" && fi.Mode().Perm() != 0o600 {
			t.Fatalf("generated file mode %04o, want 0600", fi.Mode().Perm())
		}
		content, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		k, err := ParseKey(string(content))
		if err != nil || k.ID != kr1.ActiveKeyID() {
			t.Fatalf("file holds key %s (%v), keyring uses %s", k.ID, err, kr1.ActiveKeyID())
		}

		kr2, src2, err := LoadMasterKey(opts)
		if err != nil {
			t.Fatal(err)
		}
		if src2.Generated || src2.Origin != MasterKeyFromGeneratedFile {
			t.Fatalf("second call source %+v, want the existing file read", src2)
		}
		if kr2.ActiveKeyID() != kr1.ActiveKeyID() {
			t.Fatalf("second call key %s, want the generated %s", kr2.ActiveKeyID(), kr1.ActiveKeyID())
		}
		after, _ := os.ReadFile(p)
		if !bytes.Equal(after, content) {
			t.Fatal("second call rewrote the key file")
		}
	})
	t.Run("configured key wins", func(t *testing.T) {
		t.Parallel()
		b64a, keyA := keyB64(t, 0xa)
		p := filepath.Join(t.TempDir(), "rotator.key")
		kr, src, err := LoadMasterKey(MasterKeyOptions{LookupEnv: envOf(map[string]string{EnvMasterKey: b64a}), GenerateAt: p})
		if err != nil {
			t.Fatal(err)
		}
		if kr.ActiveKeyID() != keyA.ID || src.Generated {
			t.Fatalf("source %+v, want the configured key", src)
		}
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("key file generated although a key is configured: %v", err)
		}
	})
	t.Run("existing file too open", func(t *testing.T) {
		t.Parallel()
		if runtime.GOOS == "windows" {
			t.Skip("POSIX permissions only")
		}
		b64a, _ := keyB64(t, 0xa)
		p := writeKeyFile(t, b64a, 0o644)
		_, _, err := LoadMasterKey(MasterKeyOptions{LookupEnv: envOf(nil), GenerateAt: p})
		if err == nil || !strings.Contains(err.Error(), "chmod 600") {
			t.Fatalf("error = %v, want the permission error", err)
		}
	})
	t.Run("missing directory", func(t *testing.T) {
		t.Parallel()
		p := filepath.Join(t.TempDir(), "no", "such", "dir", "rotator.key")
		_, _, err := LoadMasterKey(MasterKeyOptions{LookupEnv: envOf(nil), GenerateAt: p})
		if !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("error = %v, want os.ErrNotExist", err)
		}
	})
	t.Run("NoCreate never creates", func(t *testing.T) {
		t.Parallel()
		p := filepath.Join(t.TempDir(), "rotator.db.key")
		_, _, err := LoadMasterKey(MasterKeyOptions{LookupEnv: envOf(nil), GenerateAt: p, NoCreate: true})
		if !errors.Is(err, ErrNoMasterKey) || !strings.Contains(err.Error(), p) {
			t.Fatalf("error = %v, want ErrNoMasterKey naming %s", err, p)
		}
		if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("NoCreate created the key file: %v", err)
		}
	})
	t.Run("NoCreate reads an existing file", func(t *testing.T) {
		t.Parallel()
		b64a, keyA := keyB64(t, 0xa)
		p := writeKeyFile(t, b64a+"\n", 0o600)
		kr, src, err := LoadMasterKey(MasterKeyOptions{LookupEnv: envOf(nil), GenerateAt: p, NoCreate: true})
		if err != nil {
			t.Fatal(err)
		}
		if kr.ActiveKeyID() != keyA.ID || src.Generated || src.Origin != MasterKeyFromGeneratedFile || src.Path != p {
			t.Fatalf("keyring %v, source %+v; want key %s read from %s", kr, src, keyA.ID, p)
		}
	})
	t.Run("concurrent callers agree", func(t *testing.T) {
		t.Parallel()
		p := filepath.Join(t.TempDir(), "rotator.key")
		var (
			wg        sync.WaitGroup
			mu        sync.Mutex
			ids       = map[string]bool{}
			generated int
		)
		for range 8 {
			wg.Go(func() {
				kr, src, err := LoadMasterKey(MasterKeyOptions{LookupEnv: envOf(nil), GenerateAt: p})
				if err != nil {
					// A reader may see the file between its creation and
					// the write of the key; that is reported, never a
					// second key.
					if !errors.Is(err, ErrBadKey) {
						t.Errorf("error = %v", err)
					}
					return
				}
				mu.Lock()
				defer mu.Unlock()
				ids[kr.ActiveKeyID()] = true
				if src.Generated {
					generated++
				}
			})
		}
		wg.Wait()
		if len(ids) != 1 || generated != 1 {
			t.Fatalf("%d distinct keys, %d generations; want exactly one of each", len(ids), generated)
		}
	})
}

func TestKeyringMissing(t *testing.T) {
	t.Parallel()
	a, b, c := testKey(t, 0xa), testKey(t, 0xb), testKey(t, 0xc)
	kr, err := NewKeyring(a, b)
	if err != nil {
		t.Fatal(err)
	}
	if got := kr.Missing([]string{a.ID, b.ID}); len(got) != 0 {
		t.Errorf("Missing(active, previous) = %v, want none", got)
	}
	if got := kr.Missing([]string{c.ID, a.ID, "0123456789abcdef"}); strings.Join(got, ",") != c.ID+",0123456789abcdef" {
		t.Errorf("Missing = %v, want [%s 0123456789abcdef]", got, c.ID)
	}
	if got := kr.Missing(nil); len(got) != 0 {
		t.Errorf("Missing(nil) = %v", got)
	}
	if got := (Keyring{}).Missing([]string{a.ID}); len(got) != 1 {
		t.Errorf("zero Keyring: Missing = %v, want [%s]", got, a.ID)
	}
}
