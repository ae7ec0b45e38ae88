package api

import (
	"sync"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
)

// valueCache keeps, per credential, the opened value of the version last
// handed out, with what the answer shows of it and the labels it was
// authorised by. It spares a read the credential query and the
// decryption; it never decides alone what is current: a read served from
// it is recorded with a versionCheck, and the transaction that commits its
// value.read event confirms that the version is still current (and the
// labels unchanged), by reading the credential unless the store can tell
// that nothing changed since the entry was last confirmed (see
// recorder). A check that fails drops the entry and the read goes the
// uncached way. The watch poller drops an entry as soon as it sees a new
// version.
type valueCache struct {
	mu sync.RWMutex
	m  map[string]cachedValue
}

type cachedValue struct {
	versionID     string
	fingerprint   string
	expiresAt     time.Time
	nextCutoverAt time.Time
	labels        map[string]string
	value         secret.Value
	// confirmed: a read of the store found this version current, with these
	// labels, in a transaction that saw the store's ChangeMark mark; at is
	// the time (monotonic) taken before that read. An entry put by an
	// uncached read is not confirmed: its first cached read reads the
	// credential.
	confirmed bool
	mark      store.ChangeMark
	at        time.Time
}

// entryOf is the (unconfirmed) entry of c's current version, whose value is
// val.
func entryOf(c store.Credential, val secret.Value) cachedValue {
	v := c.Current
	return cachedValue{versionID: v.ID, fingerprint: v.Fingerprint, expiresAt: v.ExpiresAt,
		nextCutoverAt: c.State.NextRotationAt, labels: c.Labels, value: val}
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

// confirm records that a read of the store found e's version current as
// fresh (same version, same labels), with mark and at as in cachedValue,
// and returns e with fresh's fields. The entry kept is updated only if it
// still holds e's version: one dropped meanwhile stays dropped.
func (c *valueCache) confirm(id string, e cachedValue, fresh store.Credential, mark store.ChangeMark, at time.Time) cachedValue {
	n := entryOf(fresh, e.value)
	n.confirmed, n.mark, n.at = true, mark, at
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.m[id]; ok && cur.versionID == e.versionID {
		c.m[id] = n
	}
	return n
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
