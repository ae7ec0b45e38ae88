package awssm

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"runtime"
	"sync"
	"weak"

	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
)

// sharedClients shares Secrets Manager clients among the targets of this
// process. A target publishes one secret, so a configuration with 1,000
// secrets has 1,000 targets; each used to load the AWS configuration and
// build a client of its own, with its own credential cache (one fetch from
// IMDS, SSO or STS per target) and its own HTTP connections (one TLS
// handshake per target). Targets with the same region, endpoint and
// credentials now use one client, which is safe for concurrent use. The
// cache holds clients weakly: a client lives as long as a target uses it.
var sharedClients = clientCache{m: map[clientKey]weak.Pointer[secretsmanager.Client]{}}

type clientCache struct {
	mu sync.Mutex
	m  map[clientKey]weak.Pointer[secretsmanager.Client]
}

// clientKey is what a client is built from. Static credentials enter as a
// hash, so the cache keeps no copy of them.
type clientKey struct {
	region, endpoint, credentials string
}

func keyOf(cfg Config) clientKey {
	k := clientKey{region: cfg.Region, endpoint: cfg.Endpoint}
	if !cfg.AccessKeyID.IsZero() {
		h := sha256.New()
		for _, v := range [][]byte{cfg.AccessKeyID.Reveal(), cfg.SecretAccessKey.Reveal(), cfg.SessionToken.Reveal()} {
			h.Write(v)
			h.Write([]byte{0})
		}
		k.credentials = hex.EncodeToString(h.Sum(nil))
	}
	return k
}

// client returns the shared client for cfg, building it with NewClient when
// no live target uses one.
func (c *clientCache) client(ctx context.Context, cfg Config) (*secretsmanager.Client, error) {
	k := keyOf(cfg)
	c.mu.Lock()
	defer c.mu.Unlock()
	if sm := c.m[k].Value(); sm != nil {
		return sm, nil
	}
	sm, err := NewClient(ctx, cfg)
	if err != nil {
		return nil, err
	}
	wp := weak.Make(sm)
	c.m[k] = wp
	runtime.AddCleanup(sm, func(k clientKey) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.m[k] == wp {
			delete(c.m, k)
		}
	}, k)
	return sm, nil
}

// len returns the number of cache entries (for tests).
func (c *clientCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}
