package scan

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// benchDirs are the generated trees, by file count, shared by the
// benchmark's runs and removed in TestMain.
var (
	benchMu   sync.Mutex
	benchDirs = map[int]string{}
)

// benchTree writes n files of about 5 KB each: a mix of MCP client configs,
// YAML, .env, Go, TypeScript and Python, with a secret in one file of 47
// and references, URLs and identifiers everywhere.
func benchTree(b *testing.B, n int) (dir string, bytes int64) {
	benchMu.Lock()
	defer benchMu.Unlock()
	if d, ok := benchDirs[n]; ok {
		return d, treeSize(b, d)
	}
	d, err := os.MkdirTemp("", "rotator-scan-bench-")
	if err != nil {
		b.Fatal(err)
	}
	g := gen{rand.New(rand.NewPCG(uint64(n), 42))}
	exts := []string{".json", ".yaml", ".env", ".go", ".ts", ".py"}
	for i := range n {
		ext := exts[i%len(exts)]
		name := fmt.Sprintf("file%05d%s", i, ext)
		if ext == ".json" && i%12 == 0 {
			name = "claude_desktop_config.json"
		}
		sub := filepath.Join(d, fmt.Sprintf("d%03d", i/100), fmt.Sprintf("f%05d", i))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(sub, name), []byte(benchFile(g, ext, i%47 == 0)), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	benchDirs[n] = d
	return d, treeSize(b, d)
}

func treeSize(b *testing.B, d string) int64 {
	var total int64
	_ = filepath.Walk(d, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			total += fi.Size()
		}
		return nil
	})
	return total
}

func benchFile(g gen, ext string, withSecret bool) string {
	var sb strings.Builder
	secretAt := -1
	if withSecret {
		secretAt = g.r.IntN(8)
	}
	switch ext {
	case ".json":
		sb.WriteString("{\n  \"mcpServers\": {\n")
	}
	for i := 0; sb.Len() < 5000; i++ {
		id, host := g.s(alnum, 8), fmt.Sprintf("svc-%d.internal.example.com", g.r.IntN(100))
		switch ext {
		case ".json":
			v := "${env:TOKEN_" + id + "}"
			if i == secretAt {
				v = g.generate("github-pat")
			}
			fmt.Fprintf(&sb, "    \"server-%s\": {\"command\": \"npx\", \"args\": [\"-y\", \"@example/mcp-%s\", \"--host\", \"%s\"], \"env\": {\"API_TOKEN\": \"%s\", \"LOG_LEVEL\": \"info\", \"REQUEST_ID\": \"%s\"}},\n", id, id, host, v, g.uuid())
		case ".yaml":
			v := "${DB_PASSWORD}"
			if i == secretAt {
				v = g.generate("password")
			}
			fmt.Fprintf(&sb, "service_%s:\n  host: %s\n  port: %d\n  password: %s\n  checksum: sha256:%s\n  url: https://%s/api/v1?page=%d\n", id, host, 1000+g.r.IntN(9000), v, g.generate("sha256"), host, i)
		case ".env":
			v := "${SECRET_" + id + "}"
			if i == secretAt {
				v = g.generate("openai")
			}
			fmt.Fprintf(&sb, "SERVICE_%s_HOST=%s\nSERVICE_%s_KEY=%s\nSERVICE_%s_TIMEOUT=30s\n# rotated by rotator; see runbooks/generated.md\n", id, host, id, v, id)
		case ".go":
			v := "os.Getenv(\"API_KEY\")"
			if i == secretAt {
				v = "\"" + g.generate("stripe-live") + "\""
			}
			fmt.Fprintf(&sb, "func handle%s(ctx context.Context, req *http.Request) error {\n\tkey := %s\n\treq.Header.Set(\"Authorization\", \"Bearer \"+key)\n\treturn call(ctx, \"https://%s/v1/items/%s\")\n}\n\n", id, v, host, g.uuid())
		case ".ts":
			v := "process.env.API_TOKEN"
			if i == secretAt {
				v = "\"" + g.generate("slack-bot") + "\""
			}
			fmt.Fprintf(&sb, "export async function fetch%s(id: string): Promise<Item> {\n  const token = %s;\n  const res = await fetch(`https://%s/items/${id}`, { headers: { Authorization: `Bearer ${token}` } });\n  return res.json();\n}\n", id, v, host)
		case ".py":
			v := "os.environ[\"API_KEY\"]"
			if i == secretAt {
				v = "\"" + g.generate("anthropic") + "\""
			}
			fmt.Fprintf(&sb, "def fetch_%s(item_id: str) -> dict:\n    api_key = %s\n    r = requests.get(f\"https://%s/items/{item_id}\", headers={\"X-Api-Key\": api_key}, timeout=30)\n    return r.json()\n\n", strings.ToLower(id), v, host)
		}
	}
	if ext == ".json" {
		sb.WriteString("    \"last\": {\"command\": \"true\"}\n  }\n}\n")
	}
	return sb.String()
}

// BenchmarkScan scans 10,000 generated files (about 50 MB) and reports the
// peak of live heap objects, sampled every 2 ms, and the CPU time of the
// process per scan (user + system; on a shared machine wall time says more
// about the other jobs than about the scan), beside time and bytes.
func BenchmarkScan(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("files=%d", n), func(b *testing.B) {
			dir, size := benchTree(b, n)
			b.SetBytes(size)
			runtime.GC()
			// Sampled through runtime/metrics, which does not stop the
			// world (runtime.ReadMemStats would, every millisecond).
			var peak atomic.Uint64
			stop := make(chan struct{})
			done := make(chan struct{})
			go func() {
				defer close(done)
				sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
				tick := time.NewTicker(2 * time.Millisecond)
				defer tick.Stop()
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						metrics.Read(sample)
						if v := sample[0].Value.Uint64(); v > peak.Load() {
							peak.Store(v)
						}
					}
				}
			}()
			var before, after syscall.Rusage
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
			b.ResetTimer()
			var findings int
			for b.Loop() {
				res, err := Scan(context.Background(), []string{dir}, Options{})
				if err != nil {
					b.Fatal(err)
				}
				findings = len(res.Findings)
			}
			b.StopTimer()
			_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
			close(stop)
			<-done
			cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
			b.ReportMetric(cpu.Seconds()/float64(b.N), "cpu-s/op")
			b.ReportMetric(float64(peak.Load())/(1<<20), "peak-heap-MB")
			b.ReportMetric(float64(findings), "findings")
			if want := (n + 46) / 47; findings != want {
				b.Fatalf("%d findings, want the %d planted secrets", findings, want)
			}
		})
	}
}
