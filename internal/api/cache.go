package api

import (
	"sync"

	"github.com/rotatorhq/rotator/internal/secret"
)

// valueCache keeps, per credential, the opened value of the version last
// handed out, with the labels it was authorised by. It spares a read the
// credential query and the decryption; it never decides what is current:
// a read served from it is recorded with a versionCheck, so the
// transaction that commits its value.read event also confirms that the
// version is still current (and the labels unchanged). A read is thus
// never staler than one that read the store just before that commit; a
// check that fails drops the entry and the read goes the uncached way.
// The watch poller drops an entry as soon as it sees a new version.
type valueCache struct {
	mu sync.RWMutex
	m  map[string]cachedValue
}

type cachedValue struct {
	versionID   string
	fingerprint string
	labels      map[string]string
	value       secret.Value
}

func newValueCache() *valueCache { return &valueCache{m: map[string]cachedValue{}} }

func (c *valueCache) get(id string) (cachedValue, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	v, ok := c.m[id]
	return v, ok
}

func (c *valueCache) put(id string, v cachedValue) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m[id] = v
}

// drop removes id's entry if it holds version (any version when version
// is ""), so a newer entry put meanwhile stays.
func (c *valueCache) drop(id, version string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.m[id]; ok && (version == "" || v.versionID == version) {
		delete(c.m, id)
	}
}
