package api

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/view"
)

// Bounds of the list cache.
const (
	// listCacheEntries caps the credentials kept (an entry is about as
	// large as the credential's JSON; see docs/benchmarks.md): a list over
	// more credentials reads the rest from the database each time.
	listCacheEntries = 250_000
	// listCacheAge is how long an entry is trusted on its stamp: a stamp
	// (Postgres's row version) repeats only after some four billion
	// transactions, and a database restored elsewhere under the same URL
	// could give an old id an old stamp. An older entry is read again.
	listCacheAge = 10 * time.Minute
)

// listCache keeps the credentials GET /v1/credentials listed, encoded
// (view.Listed), each with its stamp (store.Reader.CredentialStamps). A
// page reads the ids and stamps of its credentials, which costs Postgres
// a fraction of reading the page, and then only the summaries whose stamp
// it does not hold: what it shows is what a direct read would show, since
// a stamp changes with anything a summary shows, whichever process or
// replica wrote it. On a store without stamps (SQLite) every page is read
// directly.
type listCache struct {
	mu sync.RWMutex
	m  map[string]*listEntry
	// cold is set while the pages read are mostly new to the cache (at
	// start, or while most credentials change): then a page is read whole
	// with its stamps, without asking for the stamps first, but for one
	// page in coldProbe, which finds out whether the cache holds enough
	// again. pages counts the pages read while cold.
	cold  atomic.Bool
	pages atomic.Uint32
}

// coldProbe: one page in coldProbe asks for the stamps first while the
// cache is cold.
const coldProbe = 8

type listEntry struct {
	l     *view.Listed
	stamp uint64
	at    time.Time // when it was read (monotonic)
}

func newListCache() *listCache { return &listCache{m: map[string]*listEntry{}} }

// lookup fills out[i] with the entry of stamps[i] where the cache holds it
// at that stamp, young enough, and returns the ids of the others.
func (c *listCache) lookup(stamps []store.CredentialStamp, out []*view.Listed, now time.Time) (miss []string) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	for i, s := range stamps {
		e := c.m[s.ID]
		if e == nil || e.stamp != s.Stamp || now.Sub(e.at) > listCacheAge {
			miss = append(miss, s.ID)
			continue
		}
		out[i] = e.l
	}
	return miss
}

// put keeps ls, read with stamps (ls[i] with stamps[i]) at at. When the
// cache is full, an eighth of it (whichever entries the map yields first)
// makes room.
func (c *listCache) put(ls []*view.Listed, stamps []uint64, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, l := range ls {
		if _, ok := c.m[l.ID()]; !ok && len(c.m) >= listCacheEntries {
			n := listCacheEntries / 8
			for id := range c.m {
				delete(c.m, id)
				if n--; n == 0 {
					break
				}
			}
		}
		c.m[l.ID()] = &listEntry{l: l, stamp: stamps[i], at: at}
	}
}

// list returns, encoded, the credentials st.ListCredentials(ctx, f)
// returns as summaries, through the cache: the stamps of the page, then
// the summaries of those the cache does not hold at their stamp, read
// with the same filter. If one of those no longer matches it (changed or
// deleted between the two reads), the page is read directly; so it is
// when the cache holds less than half of it (and kept), and while the
// cache is cold (listCache.cold).
func (c *listCache) list(ctx context.Context, st store.Reader, f store.CredentialFilter) ([]*view.Listed, error) {
	f.Summary = true
	if c.cold.Load() && c.pages.Add(1)%coldProbe != 0 {
		return c.readWhole(ctx, st, f, time.Now())
	}
	stamps, ok, err := st.CredentialStamps(ctx, f)
	if err != nil {
		return nil, err
	}
	if !ok {
		return listDirect(ctx, st, f)
	}
	now := time.Now()
	out := make([]*view.Listed, len(stamps))
	miss := c.lookup(stamps, out, now)
	mostlyNew := 2*len(miss) > len(stamps)
	c.cold.Store(mostlyNew)
	if len(miss) == 0 {
		return out, nil
	}
	if mostlyNew {
		// The page itself (a keyset read) costs less than its misses by
		// id.
		return c.readWhole(ctx, st, f, now)
	}
	mf := f
	mf.IDs, mf.AfterID, mf.Limit, mf.Stamps = miss, "", 0, true
	read, err := st.ListCredentials(ctx, mf)
	if err != nil {
		return nil, err
	}
	if len(read) != len(miss) {
		return listDirect(ctx, st, f)
	}
	ls, err := c.keep(read, now)
	if err != nil {
		return nil, err
	}
	j := 0
	for i := range out {
		if out[i] != nil {
			continue
		}
		if ls[j].ID() != stamps[i].ID { // both in the filter's order
			return listDirect(ctx, st, f)
		}
		out[i] = ls[j]
		j++
	}
	return out, nil
}

// readWhole reads the page f selects with its stamps, at now, and keeps
// it.
func (c *listCache) readWhole(ctx context.Context, st store.Reader, f store.CredentialFilter, now time.Time) ([]*view.Listed, error) {
	f.Stamps = true
	cs, err := st.ListCredentials(ctx, f)
	if err != nil {
		return nil, err
	}
	return c.keep(cs, now)
}

// keep encodes cs, read with their stamps at now, and keeps them.
func (c *listCache) keep(cs []store.Credential, now time.Time) ([]*view.Listed, error) {
	ls, err := listed(cs)
	if err != nil {
		return nil, err
	}
	stamps := make([]uint64, len(cs))
	for i := range cs {
		stamps[i] = cs[i].Stamp
	}
	c.put(ls, stamps, now)
	return ls, nil
}

// listDirect reads the page f selects and encodes it.
func listDirect(ctx context.Context, st store.Reader, f store.CredentialFilter) ([]*view.Listed, error) {
	cs, err := st.ListCredentials(ctx, f)
	if err != nil {
		return nil, err
	}
	return listed(cs)
}

// errListEncode marks a credential the list cannot encode (a time
// JSON cannot hold).
var errListEncode = errors.New("encoding a listed credential")

func listed(cs []store.Credential) ([]*view.Listed, error) {
	out := make([]*view.Listed, len(cs))
	for i := range cs {
		l, err := view.NewListed(cs[i])
		if err != nil {
			return nil, fmt.Errorf("%w %s: %w", errListEncode, cs[i].ID, err)
		}
		out[i] = l
	}
	return out, nil
}
