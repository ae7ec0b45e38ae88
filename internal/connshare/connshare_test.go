package connshare

import (
	"errors"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fakePool struct {
	id     int
	closed atomic.Int32
}

type holder struct{ _ [16]byte }

func TestShareAndRelease(t *testing.T) {
	var opened atomic.Int32
	g := New[string](func(p *fakePool) { p.closed.Add(1) })
	open := func() (*fakePool, error) { return &fakePool{id: int(opened.Add(1))}, nil }
	h1, h2, h3 := &holder{}, &holder{}, &holder{}
	r1, err := Acquire(g, "a", h1, open)
	if err != nil {
		t.Fatal(err)
	}
	r2, _ := Acquire(g, "a", h2, open)
	r3, _ := Acquire(g, "b", h3, open)
	if r1.Pool != r2.Pool || r1.Pool == r3.Pool || opened.Load() != 2 || g.Len() != 2 {
		t.Fatalf("pools %d %d %d, %d opened, %d open", r1.Pool.id, r2.Pool.id, r3.Pool.id, opened.Load(), g.Len())
	}
	r1.Release()
	r1.Release() // twice is fine, and counts once
	if r1.Pool.closed.Load() != 0 {
		t.Fatal("closed while another holder has it")
	}
	r2.Release()
	if r1.Pool.closed.Load() != 1 || g.Len() != 1 {
		t.Fatalf("closed %d times after the last release, %d open", r1.Pool.closed.Load(), g.Len())
	}
	// A new holder of key a gets a new pool.
	r4, _ := Acquire(g, "a", h1, open)
	if r4.Pool == r1.Pool {
		t.Fatal("a closed pool was handed out again")
	}
	r4.Release()
	r3.Release()
	runtime.KeepAlive(h1)
	runtime.KeepAlive(h2)
	runtime.KeepAlive(h3)
}

func TestOpenError(t *testing.T) {
	g := New[string](func(*fakePool) {})
	boom := errors.New("boom")
	if _, err := Acquire(g, "a", &holder{}, func() (*fakePool, error) { return nil, boom }); !errors.Is(err, boom) || g.Len() != 0 {
		t.Fatalf("err %v, %d open", err, g.Len())
	}
}

// TestReleasedWhenCollected: a holder dropped without Release lets go of its
// pool when it is garbage collected.
func TestReleasedWhenCollected(t *testing.T) {
	g := New[string](func(p *fakePool) { p.closed.Add(1) })
	var pool *fakePool
	func() {
		r, err := Acquire(g, "a", &holder{}, func() (*fakePool, error) { return &fakePool{}, nil })
		if err != nil {
			t.Fatal(err)
		}
		pool = r.Pool
	}()
	deadline := time.Now().Add(5 * time.Second)
	for pool.closed.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the pool of a collected holder was not closed")
		}
		runtime.GC()
		time.Sleep(10 * time.Millisecond)
	}
	if g.Len() != 0 {
		t.Fatalf("%d pools left open", g.Len())
	}
}
