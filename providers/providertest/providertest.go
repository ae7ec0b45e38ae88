// Package providertest is the conformance suite every provider passes. A
// provider package calls Exercise from its tests with a Harness that builds
// the provider against the real system it rotates credentials of (an
// authorization server, a Postgres server, a Redis server), and a Resource
// that checks, the way a consumer would, whether that system accepts a value.
//
// The suite plays the engine's part: it mints, activates, verifies and
// revokes as a rotation run does (including re-running a step after a crash,
// rotating from a current version to a new one, and revoking a pending
// version on rollback), and checks what the system thinks after each step.
// Every subtest also captures the provider's log output and every error and
// response it returned, and fails if any minted value or configured secret
// appears in them.
package providertest

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/internal/testlog"
	"github.com/rotatorhq/rotator/providers"
)

// Resource is the real system a provider mints values for, seen from the
// outside.
type Resource interface {
	// Accepts reports whether the system accepts the value of v now, found
	// by using it as a consumer would (logging in with it, calling an
	// endpoint with it). v carries the version's metadata as Mint returned
	// it (a role name, a key id). Accepts returns false and a nil error when
	// the system rejects the value, and an error only when it cannot tell
	// (the system is unreachable). It must never put the value in an error.
	Accepts(ctx context.Context, v providers.VersionRef) (bool, error)
}

// Staller is implemented by a Resource that can stop answering on command.
// When the Resource of a Harness implements it, Exercise also checks that a
// call already in flight gives up promptly when its context is cancelled.
type Staller interface {
	// Stall makes the system hold every request without answering until
	// resume is called (or the request's client goes away). resume must be
	// safe to call more than once; Exercise calls it before the subtest ends.
	Stall(t *testing.T) (resume func())
}

// Instance is one provider under test and the resource it rotates values of.
type Instance struct {
	// Provider is the provider under test. It must log through the logger
	// that Harness.New received.
	Provider providers.Provider
	// Resource checks what the real system accepts.
	Resource Resource
	// Settings are the credential's settings, sent in every request as
	// Common.Settings (for example {role: app} for a postgres-role
	// credential). They may be nil.
	Settings settings.Map
	// Secrets are configured secrets (a client secret, an admin password)
	// that must never appear in an error, a log line, metadata or evidence.
	// They are looked for whole (raw, URL- and JSON-encoded), so list the
	// secret part of a compound secret on its own too: the password of an
	// admin DSN as well as the DSN. Values shorter than 8 bytes are ignored.
	Secrets []secret.Value
}

// Harness describes a provider type to Exercise.
type Harness struct {
	// New builds a fresh provider and its resource for one subtest; it is
	// called once per subtest, with that subtest's t. The provider must log
	// through logger (pass it as providers.Env.Logger). Release what New
	// creates with t.Cleanup.
	New func(t *testing.T, logger *slog.Logger) Instance
	// Factory, when its New field is set, is the provider type's registry
	// entry. Exercise then checks that the instance claims no capability
	// the factory does not declare, and that the factory's
	// ValidateCredential accepts Instance.Settings.
	Factory providers.Factory
	// Scope is the scope the credential declares (Common.Scope).
	Scope []string
	// CredentialID is the credential id sent in requests; "providertest"
	// when empty.
	CredentialID string
	// Timeout bounds every provider call and every Accepts check; 30s when
	// zero.
	Timeout time.Duration
	// CancelBound is how soon a call must return once its context is
	// cancelled; 2s when zero.
	CancelBound time.Duration
	// Settle is how long Exercise keeps asking Resource.Accepts for a
	// change to show (a revoked value to be rejected) before failing, for
	// systems that apply changes asynchronously; 5s when zero.
	Settle time.Duration
	// MaxLiveValues, when positive, is how many values the resource holds
	// at once at most (an IAM user has at most two access keys), so Mint
	// cannot succeed beyond it until one is revoked. ConcurrentMints then
	// wants exactly that many of its concurrent mints to succeed, with
	// distinct values, and the others to fail with an error.
	MaxLiveValues int
	// Parallel runs the subtests in parallel. Set it when New gives every
	// subtest a resource of its own (a unique role or user name).
	Parallel bool
	// SecretParts, when set, returns the parts of a minted value that are
	// secret (the password of a value that is a connection URL). Exercise
	// then counts any 16 consecutive bytes of a part as a leak. When nil,
	// the secret part is taken to be the longest random-looking piece of
	// the value, split at the delimiters of URLs and key=value lists: the
	// whole of a token or password, the password of a URL whose user and
	// database names are shorter.
	SecretParts func(v providers.VersionRef) []secret.Value
}

func (h Harness) withDefaults() Harness {
	if h.CredentialID == "" {
		h.CredentialID = "providertest"
	}
	if h.Timeout <= 0 {
		h.Timeout = 30 * time.Second
	}
	if h.CancelBound <= 0 {
		h.CancelBound = 2 * time.Second
	}
	if h.Settle <= 0 {
		h.Settle = 5 * time.Second
	}
	return h
}

// Exercise runs the conformance suite against the provider that h builds.
// Each case is a subtest of t:
//
//   - Capabilities: Type is set; the instance claims nothing the factory
//     does not declare.
//   - MintActivateVerify: a minted value is activated and verified, the
//     resource accepts it, and activating or verifying again (a step re-run
//     after a crash) succeeds.
//   - Revoke: revoking an active value succeeds, and twice too; with
//     Capabilities().Revocable the resource then rejects it and Verify fails.
//   - RollbackRevoke: revoking a pending version (minted, and activated
//     when Overlap) leaves the current version accepted.
//   - Rotation: a value minted with Current set is accepted once activated;
//     with Overlap the current one stays accepted beside it; with
//     Revocable, revoking the old one leaves the new one working.
//   - ConcurrentMints: 8 goroutines mint at once and get distinct values
//     (with Harness.MaxLiveValues, exactly that many succeed and the others
//     fail with an error).
//   - VerifyRejectsUnknownValue: Verify fails, and the resource refuses, a
//     value the resource never issued.
//   - ContextCancelled: every method returns an error wrapping
//     context.Canceled, promptly, for a cancelled context; with a Staller
//     resource, calls in flight give up promptly when cancelled.
//
// After every subtest, no minted value and no Instance.Secrets value may
// appear in the provider's log output, in any error it returned, or in any
// metadata, evidence or granted scope. A minted value leaks when it appears
// whole or when any 16 consecutive bytes of its secret part do (a truncated
// value is still a leak): Harness.SecretParts, else its longest
// random-looking piece, less stretches of strings known not to be secret
// (metadata, evidence, the credential's settings and scope). Instance.Secrets
// count whole.
func Exercise(t *testing.T, h Harness) {
	t.Helper()
	if h.New == nil {
		t.Fatal("providertest: Harness.New is nil")
	}
	h = h.withDefaults()
	cases := []struct {
		name string
		fn   func(t *testing.T, b *bundle)
	}{
		{"Capabilities", testCapabilities},
		{"MintActivateVerify", testMintActivateVerify},
		{"Revoke", testRevoke},
		{"RollbackRevoke", testRollbackRevoke},
		{"Rotation", testRotation},
		{"ConcurrentMints", testConcurrentMints},
		{"VerifyRejectsUnknownValue", testVerifyRejectsUnknown},
		{"ContextCancelled", testContextCancelled},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if h.Parallel {
				t.Parallel()
			}
			c.fn(t, setup(t, h))
		})
	}
}

// bundle is the state of one subtest: the instance, the captured log
// output, and everything the provider returned that must be free of secrets.
type bundle struct {
	t    *testing.T
	h    Harness
	inst Instance
	caps providers.Capabilities
	logs *testlog.Buffer

	seq atomic.Int64

	mu       sync.Mutex
	values   []providers.VersionRef // every value minted, and every canary handed in
	rendered []string               // every error text and response rendering
	public   []string               // metadata, evidence and scope the provider reported
}

func setup(t *testing.T, h Harness) *bundle {
	t.Helper()
	logs := &testlog.Buffer{}
	logger := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	inst := h.New(t, logger)
	if inst.Provider == nil || inst.Resource == nil {
		t.Fatal("providertest: Harness.New returned no Provider or no Resource")
	}
	b := &bundle{t: t, h: h, inst: inst, caps: inst.Provider.Capabilities(), logs: logs}
	// Registered after New's clean-ups, so it runs before them: the
	// resource is still there, and the check sees everything logged.
	t.Cleanup(b.checkLeaks)
	return b
}

// ctx returns a context bounded by the harness timeout.
func (b *bundle) ctx() context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), b.h.Timeout)
	b.t.Cleanup(cancel)
	return ctx
}

// common returns the request fields for one step of a pretend run.
func (b *bundle) common(run, step, versionID string) providers.Common {
	return providers.Common{
		CredentialID:   b.h.CredentialID,
		VersionID:      versionID,
		IdempotencyKey: run + "/" + step,
		Scope:          slices.Clone(b.h.Scope),
		Settings:       b.inst.Settings,
	}
}

// newRun returns a fresh run id and version id.
func (b *bundle) newRun() (run, version string) {
	n := b.seq.Add(1)
	return fmt.Sprintf("pt-run-%d", n), fmt.Sprintf("pt-ver-%d", n)
}

// version is a minted value with the run that minted it.
type version struct {
	run string
	ref providers.VersionRef
	res providers.MintResponse
}

func (b *bundle) remember(v providers.VersionRef) {
	if v.Value.IsZero() {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.values = append(b.values, v)
}

// declare keeps strings the provider reported as non-secret: metadata,
// evidence, granted scope.
func (b *bundle) declare(metadata map[string]string, scope []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, v := range metadata {
		b.public = append(b.public, v)
	}
	b.public = append(b.public, scope...)
}

// record keeps the text of an error or the rendering of a response for the
// leak check.
func (b *bundle) record(x any) {
	var s string
	switch x := x.(type) {
	case nil:
		return
	case error:
		s = x.Error() + "\n" + fmt.Sprintf("%+v", x)
	default:
		s = fmt.Sprintf("%+v", x)
		if j, err := json.Marshal(x); err == nil {
			s += "\n" + string(j)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.rendered = append(b.rendered, s)
}

// tryMint mints a value; current is the version in use, if any.
func (b *bundle) tryMint(ctx context.Context, current *version) (version, error) {
	run, ver := b.newRun()
	req := providers.MintRequest{Common: b.common(run, "mint", ver)}
	if current != nil {
		cur := current.ref
		req.Current = &cur
	}
	resp, err := b.inst.Provider.Mint(ctx, req)
	b.remember(providers.VersionRef{VersionID: ver, Value: resp.Value, Metadata: resp.Metadata})
	b.declare(resp.Metadata, resp.GrantedScope)
	b.record(err)
	b.record(resp)
	if err != nil {
		return version{}, err
	}
	return version{run: run, ref: providers.VersionRef{VersionID: ver, Value: resp.Value, Metadata: resp.Metadata}, res: resp}, nil
}

// mint mints a value and fails the test if that fails or the response is
// malformed.
func (b *bundle) mint(current *version) version {
	b.t.Helper()
	v, err := b.tryMint(b.ctx(), current)
	if err != nil {
		b.t.Fatalf("Mint: %v", err)
	}
	b.checkMinted(v.res)
	return v
}

func (b *bundle) checkMinted(resp providers.MintResponse) {
	b.t.Helper()
	if resp.Value.IsZero() {
		b.t.Fatal("Mint returned an empty value")
	}
	if !resp.ExpiresAt.IsZero() {
		now := time.Now()
		if !resp.ExpiresAt.After(now) {
			b.t.Errorf("Mint returned ExpiresAt %s, which is not in the future", resp.ExpiresAt)
		}
		if b.caps.MaxTTL > 0 && resp.ExpiresAt.After(now.Add(b.caps.MaxTTL+time.Minute)) {
			b.t.Errorf("Mint returned ExpiresAt %s, beyond MaxTTL %s", resp.ExpiresAt, b.caps.MaxTTL)
		}
	}
	switch {
	case resp.ScopeNotReported && len(resp.GrantedScope) > 0:
		b.t.Errorf("Mint says the scope was not reported but reports GrantedScope %q", resp.GrantedScope)
	case b.caps.ScopeAware && resp.GrantedScope == nil && !resp.ScopeNotReported:
		b.t.Error("provider is ScopeAware but Mint reported no GrantedScope (set ScopeNotReported when the resource did not report it)")
	}
}

func (b *bundle) tryActivate(ctx context.Context, v version) error {
	resp, err := b.inst.Provider.Activate(ctx, providers.ActivateRequest{
		Common: b.common(v.run, "activate", v.ref.VersionID), Value: v.ref.Value,
		Metadata: v.ref.Metadata, ExpiresAt: v.res.ExpiresAt,
	})
	b.record(err)
	b.record(resp)
	b.declare(resp.Metadata, nil)
	return err
}

func (b *bundle) activate(v version) {
	b.t.Helper()
	if err := b.tryActivate(b.ctx(), v); err != nil {
		b.t.Fatalf("Activate %s: %v", v.ref.VersionID, err)
	}
}

func (b *bundle) tryVerify(ctx context.Context, v version) (providers.VerifyResponse, error) {
	resp, err := b.inst.Provider.Verify(ctx, providers.VerifyRequest{
		Common: b.common(v.run, "verify", v.ref.VersionID), Value: v.ref.Value, Metadata: v.ref.Metadata,
	})
	b.record(err)
	b.record(resp)
	b.declare(resp.Evidence, resp.GrantedScope)
	return resp, err
}

func (b *bundle) verify(v version) {
	b.t.Helper()
	if _, err := b.tryVerify(b.ctx(), v); err != nil {
		b.t.Fatalf("Verify %s: %v", v.ref.VersionID, err)
	}
}

func (b *bundle) tryRevoke(ctx context.Context, v version, step string) error {
	err := b.inst.Provider.Revoke(ctx, providers.RevokeRequest{
		Common: b.common(v.run, step, v.ref.VersionID), Value: v.ref.Value, Metadata: v.ref.Metadata,
	})
	b.record(err)
	return err
}

func (b *bundle) revoke(v version, step string) {
	b.t.Helper()
	if err := b.tryRevoke(b.ctx(), v, step); err != nil {
		b.t.Fatalf("Revoke %s (%s): %v", v.ref.VersionID, step, err)
	}
}

func (b *bundle) accepts(v version) bool {
	b.t.Helper()
	ok, err := b.inst.Resource.Accepts(b.ctx(), v.ref)
	b.record(err)
	if err != nil {
		b.t.Fatalf("Resource.Accepts %s: %v", v.ref.VersionID, err)
	}
	return ok
}

// wantAccepted fails the test unless the resource accepts v.
func (b *bundle) wantAccepted(v version, why string) {
	b.t.Helper()
	if !b.accepts(v) {
		b.t.Fatalf("the resource rejects %s %s", v.ref.VersionID, why)
	}
}

// wantRejected fails the test unless the resource rejects v within Settle.
func (b *bundle) wantRejected(v version, why string) {
	b.t.Helper()
	deadline := time.Now().Add(b.h.Settle)
	for b.accepts(v) {
		if time.Now().After(deadline) {
			b.t.Fatalf("the resource still accepts %s %s (waited %s)", v.ref.VersionID, why, b.h.Settle)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkLeaks fails the test if a minted value or a configured secret
// appears in the logs, an error or a response.
func (b *bundle) checkLeaks() {
	b.mu.Lock()
	values := slices.Clone(b.values)
	rendered := slices.Clone(b.rendered)
	public := slices.Clone(b.public)
	b.mu.Unlock()
	public = append(public, b.h.Scope...)
	public = append(public, b.h.CredentialID)
	public = appendStrings(public, map[string]any(b.inst.Settings))
	idx := newLeakIndex()
	for i, v := range values {
		name := fmt.Sprintf("minted value #%d (%d bytes, version %s)", i+1, v.Value.Len(), v.VersionID)
		var parts []string
		if b.h.SecretParts != nil {
			for _, p := range b.h.SecretParts(v) {
				parts = append(parts, p.RevealString())
			}
		} else {
			parts = randomPieces(v.Value.RevealString())
		}
		idx.add(name, v.Value, parts, public)
	}
	for i, v := range b.inst.Secrets {
		idx.add(fmt.Sprintf("configured secret #%d (%d bytes)", i+1, v.Len()), v, nil, nil)
	}
	if name, ok := idx.find(b.logs.String()); ok {
		b.t.Errorf("%s appears in the provider's log output", name)
	}
	for _, s := range rendered {
		if name, ok := idx.find(s); ok {
			b.t.Errorf("%s appears in an error or a response of the provider", name)
			break
		}
	}
}

// appendStrings appends the string values found at any depth of v.
func appendStrings(out []string, v any) []string {
	switch x := v.(type) {
	case string:
		out = append(out, x)
	case map[string]any:
		for _, e := range x {
			out = appendStrings(out, e)
		}
	case settings.Map:
		out = appendStrings(out, map[string]any(x))
	case []any:
		for _, e := range x {
			out = appendStrings(out, e)
		}
	}
	return out
}

// leakWindow is the length of the stretches of a minted value that count
// as a leak: any 16 consecutive bytes of a secret part of a value found in a
// text mean the value leaked, whole or truncated, unless they are part of a
// string known not to be secret: a metadata or evidence value or granted
// scope the provider reported, or the credential's settings or scope. The
// secret parts are what Harness.SecretParts returns, else the longest
// random-looking piece of the value (randomPieces). The rest of a compound
// value (the user, host and database of a connection URL) may rightly
// appear in logs, so it counts only as part of the whole value.
const leakWindow = 16

// leakDelimiters separate the pieces of a compound value: URLs, DSNs,
// key=value lists.
const leakDelimiters = ":/@?&=;,#\"' \t\r\n{}[]()<>|\\"

// randomPieces returns the longest pieces of s (split at leakDelimiters)
// that look random (secret.HighEntropy): a token or password is one piece;
// the password of a URL is its longest random piece when the user and
// database names are shorter.
func randomPieces(s string) []string {
	var longest []string
	for _, piece := range strings.FieldsFunc(s, func(r rune) bool { return strings.ContainsRune(leakDelimiters, r) }) {
		if len(piece) < leakWindow || !secret.HighEntropy(piece) {
			continue
		}
		switch {
		case len(longest) == 0 || len(piece) > len(longest[0]):
			longest = []string{piece}
		case len(piece) == len(longest[0]):
			longest = append(longest, piece)
		}
	}
	return longest
}

// leakIndex finds stretches of secrets in text, in one pass over the text.
type leakIndex struct {
	windows map[string]string // every leakWindow-byte stretch of a secret part -> name of its value
	whole   map[string]string // every value, in each encoding -> name
}

func newLeakIndex() leakIndex {
	return leakIndex{windows: map[string]string{}, whole: map[string]string{}}
}

// add indexes v under name: whole, in its raw, URL and JSON encodings, and
// by the stretches of its secret parts (in the same encodings) that are not
// part of a public string.
func (idx leakIndex) add(name string, v secret.Value, parts, public []string) {
	if v.Len() < secret.MinRedactLen {
		return
	}
	for _, f := range encodings(v.RevealString()) {
		idx.whole[f] = name
	}
	isPublic := func(window string) bool {
		for _, p := range public {
			if strings.Contains(p, window) || strings.Contains(url.QueryEscape(p), window) {
				return true
			}
		}
		return false
	}
	for _, part := range parts {
		for _, f := range encodings(part) {
			for k := 0; k+leakWindow <= len(f); k++ {
				if w := f[k : k+leakWindow]; !isPublic(w) {
					idx.windows[w] = name
				}
			}
		}
	}
}

// encodings returns s raw, URL-encoded and JSON-escaped.
func encodings(s string) []string {
	forms := []string{s, url.QueryEscape(s)}
	if j, err := json.Marshal(s); err == nil {
		forms = append(forms, strings.Trim(string(j), `"`))
	}
	return forms
}

// find returns the name of a value that text holds whole or a stretch of.
func (idx leakIndex) find(text string) (string, bool) {
	for k := 0; k+leakWindow <= len(text); k++ {
		if name, ok := idx.windows[text[k:k+leakWindow]]; ok {
			return name, true
		}
	}
	for f, name := range idx.whole {
		if strings.Contains(text, f) {
			return name, true
		}
	}
	return "", false
}

// canary returns a random value that no resource issued.
func canary() secret.Value {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return secret.NewString("providertest-canary-" + base64.RawURLEncoding.EncodeToString(b))
}

func testCapabilities(t *testing.T, b *bundle) {
	if b.inst.Provider.Type() == "" {
		t.Error("Type() is empty")
	}
	f := b.h.Factory
	if f.New == nil {
		return
	}
	if f.Description == "" {
		t.Error("Factory.Description is empty")
	}
	fc := f.Capabilities
	if b.caps.Overlap && !fc.Overlap {
		t.Error("the instance claims Overlap, which the factory does not declare")
	}
	if b.caps.Revocable && !fc.Revocable {
		t.Error("the instance claims Revocable, which the factory does not declare")
	}
	if b.caps.ScopeAware && !fc.ScopeAware {
		t.Error("the instance claims ScopeAware, which the factory does not declare")
	}
	if fc.MaxTTL > 0 && (b.caps.MaxTTL == 0 || b.caps.MaxTTL > fc.MaxTTL) {
		t.Errorf("the instance's MaxTTL %s exceeds the factory's %s", b.caps.MaxTTL, fc.MaxTTL)
	}
	if f.ValidateCredential != nil {
		if errs := f.ValidateCredential(b.inst.Settings); len(errs) > 0 {
			t.Errorf("ValidateCredential rejects the harness's credential settings: %v", errs)
		}
	}
}

func testMintActivateVerify(t *testing.T, b *bundle) {
	v := b.mint(nil)
	b.activate(v)
	b.activate(v) // the step re-run after a crash
	b.verify(v)
	b.verify(v)
	b.wantAccepted(v, "after Activate and Verify")
}

func testRevoke(t *testing.T, b *bundle) {
	v := b.mint(nil)
	b.activate(v)
	b.verify(v)
	b.wantAccepted(v, "after Activate")
	b.revoke(v, "retire")
	b.revoke(v, "retire") // the step re-run after a crash
	b.revoke(v, "retire_again")
	if !b.caps.Revocable {
		return
	}
	b.wantRejected(v, "after Revoke")
	if _, err := b.tryVerify(b.ctx(), v); err == nil {
		t.Error("Verify succeeds for a revoked value")
	}
}

func testRollbackRevoke(t *testing.T, b *bundle) {
	cur := b.mint(nil)
	b.activate(cur)
	b.verify(cur)

	// A run fails before Activate: the engine revokes the pending value.
	pending := b.mint(&cur)
	b.revoke(pending, "rollback_revoke")
	b.revoke(pending, "rollback_revoke")
	b.wantAccepted(cur, "after a pending version that was never activated was revoked")

	if !b.caps.Overlap {
		return
	}
	// A run fails after Activate (at Verify, at cutover): with overlap the
	// current value must survive the revocation of the new one.
	pending = b.mint(&cur)
	b.activate(pending)
	b.revoke(pending, "rollback_revoke")
	b.wantAccepted(cur, "after an activated pending version was revoked")
	if b.caps.Revocable {
		b.wantRejected(pending, "after it was revoked on rollback")
	}
	b.verify(cur)
}

func testRotation(t *testing.T, b *bundle) {
	old := b.mint(nil)
	b.activate(old)
	b.verify(old)

	next := b.mint(&old)
	if next.ref.Value.Equal(old.ref.Value) {
		t.Fatal("Mint returned the current value again")
	}
	b.activate(next)
	b.verify(next)
	b.wantAccepted(next, "after Activate")
	if !b.caps.Overlap {
		return
	}
	b.wantAccepted(old, "after the next version was activated, though the provider claims Overlap")
	b.verify(old)
	if !b.caps.Revocable {
		return
	}
	b.revoke(old, "retire_previous")
	b.wantRejected(old, "after it was retired")
	b.wantAccepted(next, "after the previous version was retired")
	b.verify(next)
}

func testConcurrentMints(t *testing.T, b *bundle) {
	const n = 8
	var (
		wg   sync.WaitGroup
		vals [n]version
		errs [n]error
	)
	ctx := b.ctx()
	for i := range n {
		wg.Go(func() { vals[i], errs[i] = b.tryMint(ctx, nil) })
	}
	wg.Wait()
	var ok []version
	for i := range n {
		if errs[i] != nil {
			if b.h.MaxLiveValues > 0 {
				continue
			}
			t.Fatalf("concurrent Mint %d: %v", i, errs[i])
		}
		b.checkMinted(vals[i].res)
		for _, prev := range ok {
			if vals[i].ref.Value.Equal(prev.ref.Value) {
				t.Fatalf("concurrent Mints %s and %s returned the same value", prev.ref.VersionID, vals[i].ref.VersionID)
			}
		}
		ok = append(ok, vals[i])
	}
	if max := b.h.MaxLiveValues; max > 0 && len(ok) != min(max, n) {
		t.Fatalf("%d of %d concurrent Mints succeeded; the resource holds %d values at most, so %d should", len(ok), n, max, min(max, n))
	}
}

func testVerifyRejectsUnknown(t *testing.T, b *bundle) {
	issued := b.mint(nil)
	b.activate(issued)
	bogus := issued
	bogus.ref.Value = canary()
	b.remember(bogus.ref)
	if _, err := b.tryVerify(b.ctx(), bogus); err == nil {
		t.Error("Verify succeeds for a value the resource never issued")
	}
	if b.accepts(bogus) {
		t.Error("Resource.Accepts accepts a value the resource never issued; the harness's check cannot fail")
	}
	// Revoking a value the resource does not know is success (already gone)
	// or an error; either way it must not leak the value.
	_ = b.tryRevoke(b.ctx(), bogus, "retire")
	b.wantAccepted(issued, "after an unknown value was revoked")
}

func testContextCancelled(t *testing.T, b *bundle) {
	v := b.mint(nil)
	b.activate(v)
	// w, a pending version, is revoked by the in-flight call against a
	// stalled resource, which the resource may still carry out once it
	// resumes; revoking a pending version leaves v working (RollbackRevoke).
	w := b.mint(&v)

	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	revokeTarget := v
	calls := map[string]func(ctx context.Context) error{
		"Mint":     func(ctx context.Context) error { _, err := b.tryMint(ctx, nil); return err },
		"Activate": func(ctx context.Context) error { return b.tryActivate(ctx, v) },
		"Verify":   func(ctx context.Context) error { _, err := b.tryVerify(ctx, v); return err },
		"Revoke":   func(ctx context.Context) error { return b.tryRevoke(ctx, revokeTarget, "cancelled_revoke") },
	}
	names := []string{"Mint", "Activate", "Verify", "Revoke"}
	for _, name := range names {
		start := time.Now()
		err := calls[name](cancelled)
		if d := time.Since(start); d > b.h.CancelBound {
			t.Errorf("%s with a cancelled context took %s, want at most %s", name, d, b.h.CancelBound)
		}
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a cancelled context returned %v, want an error wrapping context.Canceled", name, err)
		}
	}
	// A revocation that was cancelled must not have happened half-way in a
	// way that breaks the value; and the value must still work.
	b.wantAccepted(v, "after calls with a cancelled context")

	staller, ok := b.inst.Resource.(Staller)
	if !ok {
		return
	}
	revokeTarget = w
	resume := staller.Stall(t)
	defer resume()
	const after = 100 * time.Millisecond
	for _, name := range names {
		ctx, cancel := context.WithCancel(context.Background())
		timer := time.AfterFunc(after, cancel)
		start := time.Now()
		err := calls[name](ctx)
		// Whether the cancel came before the call returned (read at once:
		// a step that needs no resource, such as generating a key, may
		// finish just after 100 ms and before the cancel).
		cancelled := ctx.Err() != nil
		d := time.Since(start)
		timer.Stop()
		cancel()
		if d > after+b.h.CancelBound {
			t.Errorf("%s in flight against a stalled resource took %s after its context was cancelled, want at most %s", name, d-after, b.h.CancelBound)
		}
		if cancelled && err == nil {
			t.Errorf("%s in flight against a stalled resource returned no error after its context was cancelled", name)
		}
	}
	resume()
	b.wantAccepted(v, "after the resource resumed")
}
