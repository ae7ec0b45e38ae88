package rotation

import (
	"os"
	"sync"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
)

// runbookCacheTTL bounds how long a resolved runbook reference is reused
// without resolving it again (a file added closer to the runbook directory
// may now match the reference).
const runbookCacheTTL = 30 * time.Second

// runbookCache remembers resolved runbook references, so a scheduler tick
// or an emergency rotation that plans thousands of runs reads, hashes and
// parses each runbook once instead of once per run. An entry is reused
// while its file keeps its size and modification time, for at most
// runbookCacheTTL. Unresolvable references are not cached. The zero value
// is ready to use.
type runbookCache struct {
	mu      sync.Mutex
	entries map[string]runbookEntry // by reference as written
}

type runbookEntry struct {
	ref     store.RunbookRef
	file    string
	size    int64
	modTime time.Time
	at      time.Time
}

// get returns the cached resolution of ref if its file is unchanged.
func (c *runbookCache) get(ref string) (store.RunbookRef, bool) {
	c.mu.Lock()
	ent, ok := c.entries[ref]
	c.mu.Unlock()
	if !ok || time.Since(ent.at) > runbookCacheTTL {
		return store.RunbookRef{}, false
	}
	fi, err := os.Stat(ent.file)
	if err != nil || fi.Size() != ent.size || !fi.ModTime().Equal(ent.modTime) {
		return store.RunbookRef{}, false
	}
	return ent.ref, true
}

// put caches the resolution of ref to file. A file modified in the last
// two seconds is not cached: it may have changed between the read that
// produced the digest and the stat that validates it.
func (c *runbookCache) put(ref, file string, r store.RunbookRef) {
	fi, err := os.Stat(file)
	if err != nil || time.Since(fi.ModTime()) < 2*time.Second {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[string]runbookEntry{}
	}
	c.entries[ref] = runbookEntry{ref: r, file: file, size: fi.Size(), modTime: fi.ModTime(), at: time.Now()}
}
