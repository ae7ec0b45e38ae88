package mysqluser

import (
	"errors"
	"sync"
	"testing"

	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/providers"
)

// TestAdminPoolBounded: concurrent rotations of several credentials by two
// providers configured alike never hold more than max_admin_connections
// admin connections between them, and the providers share one pool, which
// the last Close closes.
func TestAdminPoolBounded(t *testing.T) {
	t.Parallel()
	const limit, creds = 2, 6
	envs := make([]*env, creds)
	for i := range envs {
		envs[i] = newEnv(t, StrategyAlternating)
	}
	p1, _, dsn := newProvider(t, settings.Map{"max_admin_connections": limit}, nil)
	p2, err := Factory().New(t.Context(), providers.Env{Name: "twin", Settings: settings.Map{"admin_dsn": dsn, "max_admin_connections": limit}})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.(*Provider).Close()
	var wg sync.WaitGroup
	for i, e := range envs {
		p := p1
		if i%2 == 1 {
			p = p2.(*Provider)
		}
		wg.Go(func() {
			v := rotate(t, p, e.cred(), 1, nil)
			rotate(t, p, e.cred(), 2, &v)
		})
	}
	wg.Wait()
	a1, _ := p1.shared()
	a2, _ := p2.(*Provider).shared()
	if a1 != a2 {
		t.Fatal("two providers with the same admin_dsn and pool size hold two pools")
	}
	st := a1.db.Stats()
	if st.MaxOpenConnections != limit || st.OpenConnections > limit {
		t.Fatalf("pool stats %+v, want at most %d connections", st, limit)
	}
	if st.WaitCount == 0 {
		t.Log("no call waited for a connection; the bound was not reached")
	}
	t.Logf("admin pool after %d concurrent rotations: %d open, %d waits", 2*creds, st.OpenConnections, st.WaitCount)
	p1.Close()
	if _, err := p2.(*Provider).shared(); err != nil {
		t.Fatalf("closing one provider broke the other: %v", err)
	}
	p2.(*Provider).Close()
	if _, err := p1.shared(); !errors.Is(err, ErrClosed) {
		t.Fatalf("a closed provider answered %v, want ErrClosed", err)
	}
	if err := a1.db.Ping(); err == nil {
		t.Fatal("the shared pool is still open after both providers closed")
	}
}
