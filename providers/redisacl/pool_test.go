package redisacl

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/providers"
)

// newAdmin creates an ACL user with every permission and returns its name
// and password: a provider authenticated as it has connections that no
// other test shares, so CLIENT LIST tells them apart.
func newAdmin(t *testing.T) (string, secret.Value) {
	t.Helper()
	user := newUser(t)
	pw := secret.NewString("canary-admin-pw-" + user)
	c := newClient(redisAddr(), "", "")
	defer c.Close()
	if err := c.Do(t.Context(), "ACL", "SETUSER", user, "on", "#"+hash(pw), "~*", "&*", "+@all").Err(); err != nil {
		t.Fatal(err)
	}
	return user, pw
}

// adminProvider is a provider authenticated as admin, connecting directly.
func adminProvider(t *testing.T, admin string, pw secret.Value, max int) *Provider {
	t.Helper()
	prov, err := Factory().New(t.Context(), providers.Env{Name: "redis-test", Settings: settings.Map{
		"addr": redisAddr(), "username": admin, "password": pw, "max_admin_connections": max,
	}})
	if err != nil {
		t.Fatal(err)
	}
	p := prov.(*Provider)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// clientIDs returns the ids of the server's connections authenticated as
// user (CLIENT LIST).
func clientIDs(ctx context.Context, user string) ([]string, error) {
	c := newClient(redisAddr(), "", "")
	defer c.Close()
	list, err := c.ClientList(ctx).Result()
	if err != nil {
		return nil, err
	}
	var ids []string
	for line := range strings.Lines(list) {
		var id string
		mine := false
		for f := range strings.FieldsSeq(line) {
			if v, ok := strings.CutPrefix(f, "id="); ok {
				id = v
			}
			if f == "user="+user {
				mine = true
			}
		}
		if mine {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func tryRotate(ctx context.Context, p *Provider, user string, n int, prev *providers.VersionRef) (providers.VersionRef, error) {
	m, err := p.Mint(ctx, providers.MintRequest{Common: common(user, n, "mint")})
	if err != nil {
		return providers.VersionRef{}, err
	}
	if _, err := p.Activate(ctx, providers.ActivateRequest{Common: common(user, n, "activate"), Value: m.Value, Metadata: m.Metadata}); err != nil {
		return providers.VersionRef{}, err
	}
	if _, err := p.Verify(ctx, providers.VerifyRequest{Common: common(user, n, "verify"), Value: m.Value, Metadata: m.Metadata}); err != nil {
		return providers.VersionRef{}, err
	}
	if prev != nil {
		if err := p.Revoke(ctx, providers.RevokeRequest{Common: common(user, n, "revoke_previous"), Value: prev.Value, Metadata: prev.Metadata}); err != nil {
			return providers.VersionRef{}, err
		}
	}
	return providers.VersionRef{VersionID: fmt.Sprintf("v%03d", n), Value: m.Value, Metadata: m.Metadata}, nil
}

// TestAdminConnectionsReused runs 50 rotations (5 users at once, 10 each:
// activate, verify, revoke the previous password) through a provider with a
// pool of 2 and watches CLIENT LIST: the admin work must have used at most
// 2 connections in all. Before the pool, every Activate and Revoke opened
// one.
func TestAdminConnectionsReused(t *testing.T) {
	t.Parallel()
	const users, perUser, maxConns = 5, 10, 2
	admin, pw := newAdmin(t)
	p := adminProvider(t, admin, pw, maxConns)

	seen := map[string]bool{}
	sample := func() {
		ids, err := clientIDs(t.Context(), admin)
		if err != nil {
			t.Error(err)
		}
		for _, id := range ids {
			seen[id] = true
		}
	}
	done := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(2 * time.Millisecond):
				sample()
			}
		}
	})
	var wg sync.WaitGroup
	for range users {
		user := newUser(t)
		wg.Go(func() {
			var prev *providers.VersionRef
			for n := 1; n <= perUser; n++ {
				v, err := tryRotate(t.Context(), p, user, n, prev)
				if err != nil {
					t.Errorf("user %s, rotation %d: %v", user, n, err)
					return
				}
				prev = &v
			}
		})
	}
	wg.Wait()
	close(done)
	sampler.Wait()
	sample()
	t.Logf("%d rotations: %d admin connections seen in CLIENT LIST, %d opened", users*perUser, len(seen), p.dials())
	if len(seen) == 0 {
		t.Fatal("saw no admin connection in CLIENT LIST; the check cannot work")
	}
	if len(seen) > maxConns || p.dials() > maxConns {
		t.Fatalf("%d rotations used %d admin connections (%d opened), want at most the pool's %d", users*perUser, len(seen), p.dials(), maxConns)
	}
}

// TestCloseReleasesConnections: Close ends the admin connections, and a
// call after Close fails with ErrClosed (retryable).
func TestCloseReleasesConnections(t *testing.T) {
	t.Parallel()
	admin, pw := newAdmin(t)
	p := adminProvider(t, admin, pw, 4)
	user := newUser(t)
	v1, err := tryRotate(t.Context(), p, user, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ids, err := clientIDs(t.Context(), admin); err != nil || len(ids) == 0 {
		t.Fatalf("no admin connection before Close (%v, err %v); the check cannot work", ids, err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ids, err := clientIDs(t.Context(), admin)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin connections %v still open 5s after Close", ids)
		}
		time.Sleep(10 * time.Millisecond)
	}
	err = p.Revoke(t.Context(), providers.RevokeRequest{Common: common(user, 1, "revoke"), Value: v1.Value, Metadata: v1.Metadata})
	if !errors.Is(err, ErrClosed) || errors.Is(err, providers.ErrPermanent) {
		t.Fatalf("Revoke after Close: %v, want ErrClosed and not permanent", err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestCancelInFlightOnPooledConnection: a server that accepts connections
// and never answers. A call blocked on a pooled connection returns promptly
// when its context is cancelled, that connection is not reused, and the
// pool's slot is free again.
func TestCancelInFlightOnPooledConnection(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); conns.Wait() })
	conns.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Go(func() { _, _ = io.Copy(io.Discard, c); _ = c.Close() })
		}
	})
	prov, err := Factory().New(t.Context(), providers.Env{Name: "mute", Settings: settings.Map{"addr": ln.Addr().String(), "max_admin_connections": 1}})
	if err != nil {
		t.Fatal(err)
	}
	p := prov.(*Provider)
	t.Cleanup(func() { _ = p.Close() })
	val := secret.NewString("canary-value-never-sent-in-clear-123")
	for i := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		timer := time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		_, err := p.Activate(ctx, providers.ActivateRequest{Common: common("mute-user", i, "activate"), Value: val})
		d := time.Since(start)
		timer.Stop()
		cancel()
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("call %d: %v, want an error wrapping context.Canceled", i, err)
		}
		if d > 2*time.Second {
			t.Fatalf("call %d took %s after its context was cancelled", i, d)
		}
		if strings.Contains(err.Error(), val.RevealString()) {
			t.Fatalf("the error carries the value: %v", err)
		}
	}
	// With one slot, the second and third calls could only run because the
	// first gave its slot back; each needed a new connection.
	if n := p.dials(); n != 3 {
		t.Fatalf("%d connections opened for 3 cancelled calls, want 3 (a cancelled call's connection must not be reused)", n)
	}
}

// TestProvidersShareAPool: providers configured alike (as the engine may
// build several at once) share one admin pool, open until the last of them
// is closed.
func TestProvidersShareAPool(t *testing.T) {
	t.Parallel()
	const n, maxConns = 10, 2
	admin, pw := newAdmin(t)
	ps := make([]*Provider, n)
	for i := range ps {
		ps[i] = adminProvider(t, admin, pw, maxConns)
	}
	var wg sync.WaitGroup
	for _, p := range ps {
		user := newUser(t)
		wg.Go(func() {
			if _, err := tryRotate(t.Context(), p, user, 1, nil); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if d := ps[0].dials(); d == 0 || d > maxConns {
		t.Fatalf("%d providers opened %d admin connections, want 1 to %d in all", n, d, maxConns)
	}
	for _, p := range ps[:n-1] {
		_ = p.Close()
	}
	if ids, err := clientIDs(t.Context(), admin); err != nil || len(ids) == 0 {
		t.Fatalf("the pool closed while a provider still uses it (%v, %v)", ids, err)
	}
	_ = ps[n-1].Close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ids, err := clientIDs(t.Context(), admin)
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("admin connections %v open 5s after the last Close", ids)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
