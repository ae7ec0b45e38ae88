//go:build bigapply

package inventory_test

import (
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/inventory"
	"github.com/rotatorhq/rotator/internal/store/sqlite"
	"github.com/rotatorhq/rotator/internal/testconfig"
	"github.com/rotatorhq/rotator/rotation"
)

// TestApplyProfile loads and applies a generated inventory (BIG_N
// credentials, default 100,000) to a new SQLite database, twice, in
// process, logging times and the largest heap, and writing heap profiles
// to PROFILE_DIR when set: after loading, and whenever the heap in use
// grows by a fifth. It is how docs/benchmarks.md found where apply's
// memory went:
//
//	PROFILE_DIR=/tmp/prof go test -tags bigapply -run TestApplyProfile -v ./internal/inventory
//	go tool pprof -sample_index=inuse_space -top /tmp/prof/peak3.heap
func TestApplyProfile(t *testing.T) {
	n, _ := strconv.Atoi(os.Getenv("BIG_N"))
	if n == 0 {
		n = 100_000
	}
	dir := t.TempDir()
	path, err := testconfig.WriteFiles(dir, "big.yaml", n)
	if err != nil {
		t.Fatal(err)
	}
	stop := sampleHeap(t)
	defer stop()
	start := time.Now()
	cfg, err := config.LoadLimit(path, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("load: %s", time.Since(start))
	heapProfile(t, "loaded")
	st, err := sqlite.Open(t.Context(), "sqlite://"+filepath.Join(dir, "r.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := rotation.Migrate(t.Context(), st); err != nil {
		t.Fatal(err)
	}
	for _, round := range []string{"apply", "re-apply"} {
		start = time.Now()
		d, err := inventory.Apply(t.Context(), st, cfg, inventory.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: %s, %d changes", round, time.Since(start), len(d.Changes))
	}
}

// heapProfile logs the heap in use after a collection and writes a
// profile named name to PROFILE_DIR.
func heapProfile(t *testing.T, name string) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	t.Logf("%s: heap in use %d MB", name, ms.HeapInuse>>20)
	writeProfile(t, name)
}

func writeProfile(t *testing.T, name string) {
	dir := os.Getenv("PROFILE_DIR")
	if dir == "" {
		return
	}
	f, err := os.Create(filepath.Join(dir, name+".heap"))
	if err != nil {
		t.Error(err)
		return
	}
	defer f.Close()
	if err := pprof.WriteHeapProfile(f); err != nil {
		t.Error(err)
	}
}

// sampleHeap polls the heap in use every 100ms, writing a profile (as of
// the last collection) each time it has grown by a fifth; stop logs the
// largest seen.
func sampleHeap(t *testing.T) (stop func()) {
	done, finished := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(finished)
		var most uint64
		n := 0
		for {
			select {
			case <-done:
				t.Logf("largest heap in use: %d MB", most>>20)
				return
			case <-time.After(100 * time.Millisecond):
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > most*6/5 {
				most = ms.HeapInuse
				n++
				writeProfile(t, "peak"+strconv.Itoa(n))
			}
		}
	}()
	return func() { close(done); <-finished }
}
