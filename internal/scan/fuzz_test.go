package scan

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzNames are the file names the fuzzer picks from: each way the scanner
// reads a file.
var fuzzNames = []string{"claude_desktop_config.json", "mcp.json", "settings.json", "config.yaml", "config.toml",
	"server.json", ".env", "app.ts", "server.py", "main.go", "checkout.cfm", "notes.txt"}

func FuzzScan(f *testing.F) {
	dir := f.TempDir()
	fillCorpus(f, "testdata/corpus", dir, 1)
	_ = filepath.WalkDir(dir, func(path string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			b, _ := os.ReadFile(path)
			for i, n := range fuzzNames {
				if strings.HasSuffix(path, filepath.Ext(n)) || filepath.Base(path) == n {
					f.Add(uint8(i), b)
					break
				}
			}
		}
		return nil
	})
	f.Add(uint8(0), []byte(`{"mcpServers":{"x":{"args":["--token"`))
	f.Add(uint8(4), []byte("[mcp_servers.a]\nenv = { K = \"v\" \n"))
	f.Add(uint8(3), []byte("a: &x [*x]\n"))
	f.Fuzz(func(t *testing.T, which uint8, data []byte) {
		name := fuzzNames[int(which)%len(fuzzNames)]
		fs := Bytes(name, data)
		lines := strings.Count(string(data), "\n") + 1
		for _, fd := range fs {
			if fd.Line < 1 || fd.Line > lines || fd.Column < 1 {
				t.Fatalf("finding at %d:%d outside the %d-line input", fd.Line, fd.Column, lines)
			}
			if fd.Rule == "" || fd.Severity == "" || fd.Kind == "" || fd.Fix == "" || fd.Fingerprint == "" {
				t.Fatalf("incomplete finding %+v", fd)
			}
			v := fd.Value()
			if fd.Kind != KindToolInput && v == "" {
				t.Fatalf("finding without a value at %d:%d", fd.Line, fd.Column)
			}
			if utf8.RuneCountInString(v) >= 8 && (strings.Contains(fd.Preview, v) || strings.Contains(fd.Fix, v)) {
				t.Fatalf("preview %q or fix holds the value", fd.Preview)
			}
		}
	})
}
