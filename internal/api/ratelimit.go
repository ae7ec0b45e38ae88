package api

import (
	"math"
	"net"
	"sync"
	"time"
)

// AuthLimit bounds failed authentications per client address with a token
// bucket: Burst failures at once, then one per Every. A client whose bucket
// is empty is answered 429 (with Retry-After) before its token is looked
// at, so guessing tokens costs time; valid tokens never use the bucket up.
type AuthLimit struct {
	Burst int
	Every time.Duration
}

// DefaultAuthLimit allows 20 failed attempts at once, then one a second.
var DefaultAuthLimit = AuthLimit{Burst: 20, Every: time.Second}

// maxLimited bounds the addresses the limiter remembers; past it, addresses
// whose bucket has refilled are forgotten (they are as good as new).
const maxLimited = 10000

// limiter is the failed-authentication limiter.
type limiter struct {
	lim AuthLimit
	mu  sync.Mutex
	m   map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(l AuthLimit) *limiter {
	if l.Burst <= 0 || l.Every <= 0 {
		l = DefaultAuthLimit
	}
	return &limiter{lim: l, m: map[string]*bucket{}}
}

// level refills b to now and returns its tokens.
func (l *limiter) level(b *bucket, now time.Time) float64 {
	if d := now.Sub(b.at); d > 0 {
		b.tokens = math.Min(float64(l.lim.Burst), b.tokens+float64(d)/float64(l.lim.Every))
		b.at = now
	}
	return b.tokens
}

// blocked returns how long addr must wait before it may try again (0: it
// may now).
func (l *limiter) blocked(addr string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.m[addr]
	if !ok {
		return 0
	}
	if t := l.level(b, now); t < 1 {
		return time.Duration((1 - t) * float64(l.lim.Every))
	}
	return 0
}

// fail records a failed authentication from addr.
func (l *limiter) fail(addr string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.m[addr]
	if !ok {
		if len(l.m) >= maxLimited {
			l.forgetFull(now)
		}
		b = &bucket{tokens: float64(l.lim.Burst), at: now}
		l.m[addr] = b
	}
	l.level(b, now)
	b.tokens = math.Max(0, b.tokens-1)
}

// forgetFull drops the buckets that have refilled.
func (l *limiter) forgetFull(now time.Time) {
	for k, b := range l.m {
		if l.level(b, now) >= float64(l.lim.Burst) {
			delete(l.m, k)
		}
	}
}

// clientAddr is the address a request came from, without its port: the
// peer of the connection (a proxy's X-Forwarded-For is not trusted).
func clientAddr(remote string) string {
	host, _, err := net.SplitHostPort(remote)
	if err != nil {
		return remote
	}
	return host
}
