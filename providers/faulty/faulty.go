// Package faulty is a provider for testing rotator itself: it behaves like
// a real resource that accepts several values at once (overlap), and it
// fails, hangs or slows down on command, so fault-injection tests can break
// a rotation at any step.
//
// The resource is a directory (state_dir) holding one file per valid value,
// named by the SHA-256 of the value, so several processes (a killed serve
// and its successor) see the same resource. Without state_dir the resource
// lives in memory.
//
// Behaviour is read from a JSON control file (control_file) at every call:
//
//	{"fail": ["mint", "verify"], "hang": ["activate"], "delay": {"mint": "2s"}, "grant": ["admin"]}
//
// A step in uninterruptible with a delay sleeps through it even when its
// call is cancelled, then succeeds, as a resource that completes a request
// its client has given up on.
//
// A step in panic panics with a message that holds the value it was
// given (activate, verify, revoke: the request's value; mint: the value it
// minted), as a buggy plugin might: a test proves the engine survives it
// and that the value reaches no output.
//
// A step in both fail and permanent fails with an error wrapping
// providers.ErrPermanent, as a revoked grant or a refused permission does.
//
// grant adds scopes to what mint and verify report as granted, as a
// resource that gives more than was asked for would; unreported_scope
// (["mint", "verify"]) makes those steps not report the granted scope at
// all. With fail_times N, the steps in fail fail only their first N calls
// (counted, across processes, in CONTROL_FILE.count), then succeed: a
// resource that recovers.
//
// With stateful: true the provider is Stateful and behaves like an
// authorization server that rotates refresh tokens: every Mint returns a
// new chain token as its State and requires, once one was issued, the last
// one issued as MintRequest.State (anything else is a reuse, refused
// permanently), so a test can tell whether the engine hands back the newest
// state.
//
// With local: true it declares the Local capability, as a provider whose
// values exist nowhere but in rotator would, so engine tests can break a
// rotation whose mint is recorded only at cutover (its state_dir resource
// is then a test's view of what the engine was handed, not a resource).
//
// It is refused unless ROTATOR_ENABLE_FAULTY_PROVIDER=1, so it cannot be
// configured in production by accident.
package faulty

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/providers"
)

// Type is the provider type name.
const Type = "faulty"

// EnableEnv must be "1" for New to build a faulty provider.
const EnableEnv = "ROTATOR_ENABLE_FAULTY_PROVIDER"

var capabilities = providers.Capabilities{Overlap: true, Revocable: true}

// factoryCapabilities are what the type can do at best (stateful: true).
var factoryCapabilities = providers.Capabilities{Overlap: true, Revocable: true, Stateful: true}

// Factory returns the registry entry of the faulty provider.
func Factory() providers.Factory {
	return providers.Factory{
		Description:      "testing only: a resource that fails, hangs or slows on command",
		Capabilities:     factoryCapabilities,
		ValidateProvider: func(s settings.Map) settings.Errors { _, errs := parse(s); return errs },
		CapabilitiesOf: func(s settings.Map) providers.Capabilities {
			c, _ := parse(s)
			return New(c).Capabilities()
		},
		ValidateCredential: func(s settings.Map) settings.Errors { return nil },
		New: func(_ context.Context, env providers.Env) (providers.Provider, error) {
			if os.Getenv(EnableEnv) != "1" {
				return nil, fmt.Errorf("the faulty provider is for tests; set %s=1 to use it: %w", EnableEnv, providers.ErrPermanent)
			}
			cfg, errs := parse(env.Settings)
			if len(errs) > 0 {
				return nil, fmt.Errorf("faulty: %w: %w", providers.ErrPermanent, errs[0])
			}
			return New(cfg), nil
		},
	}
}

// Config configures a faulty provider.
type Config struct {
	StateDir    string
	ControlFile string
	Stateful    bool
	Local       bool
}

func parse(s settings.Map) (Config, settings.Errors) {
	r := settings.NewReader(s)
	c := Config{StateDir: r.String("state_dir", ""), ControlFile: r.String("control_file", ""), Stateful: r.Bool("stateful", false), Local: r.Bool("local", false)}
	r.Unknown()
	return c, r.Errors()
}

// Control is the content of the control file.
type Control struct {
	Fail  []string          `json:"fail"`
	Hang  []string          `json:"hang"`
	Delay map[string]string `json:"delay"`
	Grant []string          `json:"grant"`
	// FailTimes limits the failures of each step in Fail to its first
	// FailTimes calls (0: every call fails).
	FailTimes int `json:"fail_times"`
	// Unreported lists the steps ("mint", "verify") that do not report the
	// granted scope, as an OAuth token response without scope does not.
	Unreported []string `json:"unreported_scope"`
	// Permanent lists the steps of Fail whose failure wraps
	// providers.ErrPermanent (retrying cannot help).
	Permanent []string `json:"permanent"`
	// Panic lists the steps that panic with a message holding the value
	// they were given (or, for mint, minted).
	Panic []string `json:"panic"`
	// Uninterruptible lists the steps whose delay a cancelled call does not
	// cut short and which then succeed all the same, as a resource that
	// completes a request its client has given up on.
	Uninterruptible []string `json:"uninterruptible"`
}

// Provider is the faulty provider.
type Provider struct {
	cfg   Config
	mu    sync.Mutex
	mem   map[string]bool
	chain string // digest of the last state issued, without state_dir
}

// ErrStaleState is the error of a Mint handed another state than the last
// one issued (a reused refresh token).
var ErrStaleState = fmt.Errorf("stale provider state (reused): %w", providers.ErrPermanent)

// New returns a faulty provider.
func New(cfg Config) *Provider { return &Provider{cfg: cfg, mem: map[string]bool{}} }

// ErrInjected is the error of an injected failure.
var ErrInjected = errors.New("injected failure")

// control reads the control file (none: the zero Control).
func (p *Provider) control() (Control, error) {
	var c Control
	if p.cfg.ControlFile == "" {
		return c, nil
	}
	data, err := os.ReadFile(p.cfg.ControlFile)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("reading control file: %w", err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("control file %s: %w", p.cfg.ControlFile, err)
	}
	return c, nil
}

// granted is what the resource grants for a request of scope.
func (p *Provider) granted(scope []string) []string {
	c, err := p.control()
	if err != nil || len(c.Grant) == 0 {
		return scope
	}
	return append(slices.Clone(scope), c.Grant...)
}

// unreported reports whether step does not report the granted scope.
func (p *Provider) unreported(step string) bool {
	c, err := p.control()
	return err == nil && slices.Contains(c.Unreported, step)
}

func (p *Provider) behave(ctx context.Context, step string) error {
	c, err := p.control()
	if err != nil {
		return err
	}
	if d, ok := c.Delay[step]; ok && slices.Contains(c.Uninterruptible, step) {
		if dur, err := time.ParseDuration(d); err == nil {
			time.Sleep(dur)
		}
		return nil
	} else if ok {
		dur, err := time.ParseDuration(d)
		if err == nil {
			select {
			case <-time.After(dur):
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	if slices.Contains(c.Hang, step) {
		<-ctx.Done()
		return context.Cause(ctx)
	}
	if slices.Contains(c.Fail, step) {
		if c.FailTimes > 0 {
			n, err := p.count(step)
			if err != nil {
				return err
			}
			if n > c.FailTimes {
				return ctx.Err()
			}
			return fmt.Errorf("%s (failure %d of %d): %w", step, n, c.FailTimes, ErrInjected)
		}
		if slices.Contains(c.Permanent, step) {
			return fmt.Errorf("%s: %w: %w", step, ErrInjected, providers.ErrPermanent)
		}
		return fmt.Errorf("%s: %w", step, ErrInjected)
	}
	return ctx.Err()
}

// maybePanic panics, quoting v, when the control file lists step in panic.
func (p *Provider) maybePanic(step string, v secret.Value) {
	c, err := p.control()
	if err == nil && slices.Contains(c.Panic, step) {
		panic(fmt.Sprintf("faulty: %s panicked holding the value %q", step, v.RevealString()))
	}
}

// count adds one call of step to the counts file beside the control file
// and returns the step's calls so far.
func (p *Provider) count(step string) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	path := p.cfg.ControlFile + ".count"
	counts := map[string]int{}
	if data, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(data, &counts)
	}
	counts[step]++
	data, _ := json.Marshal(counts)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		return 0, fmt.Errorf("counting failures: %w", err)
	}
	return counts[step], nil
}

func digest(v secret.Value) string {
	h := sha256.Sum256(v.Reveal())
	return hex.EncodeToString(h[:])
}

func (p *Provider) set(v secret.Value, valid bool) error {
	d := digest(v)
	if p.cfg.StateDir == "" {
		p.mu.Lock()
		defer p.mu.Unlock()
		if valid {
			p.mem[d] = true
		} else {
			delete(p.mem, d)
		}
		return nil
	}
	path := filepath.Join(p.cfg.StateDir, d)
	if !valid {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := os.MkdirAll(p.cfg.StateDir, 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, nil, 0o600)
}

// Valid reports whether the resource accepts v.
func (p *Provider) Valid(v secret.Value) bool {
	d := digest(v)
	if p.cfg.StateDir == "" {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.mem[d]
	}
	_, err := os.Stat(filepath.Join(p.cfg.StateDir, d))
	return err == nil
}

// Type implements providers.Provider.
func (p *Provider) Type() string { return Type }

// Capabilities implements providers.Provider.
func (p *Provider) Capabilities() providers.Capabilities {
	c := capabilities
	c.Stateful, c.Local = p.cfg.Stateful, p.cfg.Local
	return c
}

// advance checks that state is the last one issued (or that none was) and
// issues the next.
func (p *Provider) advance(state secret.Value) (secret.Value, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	last := p.chain
	path := filepath.Join(p.cfg.StateDir, "chain")
	if p.cfg.StateDir != "" {
		data, err := os.ReadFile(path)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return secret.Value{}, err
		}
		last = string(data)
	}
	if last != "" && (state.IsZero() || digest(state) != last) {
		return secret.Value{}, ErrStaleState
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	next := secret.NewString("chain_" + base64.RawURLEncoding.EncodeToString(b))
	if p.cfg.StateDir == "" {
		p.chain = digest(next)
		return next, nil
	}
	if err := os.MkdirAll(p.cfg.StateDir, 0o700); err != nil {
		return secret.Value{}, err
	}
	return next, os.WriteFile(path, []byte(digest(next)), 0o600)
}

// Login implements providers.Loginer for a stateful provider: it prompts
// with a fixed verification URI and starts a new chain (the last state
// issued is the one it returns, whatever came before).
func (p *Provider) Login(ctx context.Context, req providers.LoginRequest) (providers.LoginResponse, error) {
	if !p.cfg.Stateful {
		return providers.LoginResponse{}, fmt.Errorf("faulty: login needs stateful: true: %w", providers.ErrPermanent)
	}
	if err := p.behave(ctx, "login"); err != nil {
		return providers.LoginResponse{}, err
	}
	if req.Prompt != nil {
		req.Prompt(providers.LoginPrompt{VerificationURI: "https://faulty.invalid/device", UserCode: "FLTY-CODE"})
	}
	p.mu.Lock()
	if p.cfg.StateDir == "" {
		p.chain = ""
	} else if err := os.Remove(filepath.Join(p.cfg.StateDir, "chain")); err != nil && !errors.Is(err, fs.ErrNotExist) {
		p.mu.Unlock()
		return providers.LoginResponse{}, err
	}
	p.mu.Unlock()
	next, err := p.advance(secret.Value{})
	if err != nil {
		return providers.LoginResponse{}, err
	}
	return providers.LoginResponse{State: next, Metadata: map[string]string{"state_digest": digest(next)[:16]}}, nil
}

// LastState is the digest of the last state issued ("" for none).
func (p *Provider) LastState() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cfg.StateDir == "" {
		return p.chain
	}
	data, _ := os.ReadFile(filepath.Join(p.cfg.StateDir, "chain"))
	return string(data)
}

// StateDigest is how LastState identifies a state.
func StateDigest(v secret.Value) string { return digest(v) }

// Mint implements providers.Provider.
func (p *Provider) Mint(ctx context.Context, req providers.MintRequest) (providers.MintResponse, error) {
	if err := p.behave(ctx, "mint"); err != nil {
		return providers.MintResponse{}, err
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	resp := providers.MintResponse{Value: secret.NewString("flt_" + base64.RawURLEncoding.EncodeToString(b)), GrantedScope: p.granted(req.Scope)}
	p.maybePanic("mint", resp.Value)
	if p.unreported("mint") {
		resp.GrantedScope, resp.ScopeNotReported = nil, true
	}
	if p.cfg.Stateful {
		next, err := p.advance(req.State)
		if err != nil {
			return providers.MintResponse{}, err
		}
		resp.State = next
	}
	return resp, nil
}

// Activate implements providers.Provider: the resource starts accepting the value.
func (p *Provider) Activate(ctx context.Context, req providers.ActivateRequest) (providers.ActivateResponse, error) {
	if err := p.behave(ctx, "activate"); err != nil {
		return providers.ActivateResponse{}, err
	}
	p.maybePanic("activate", req.Value)
	return providers.ActivateResponse{}, p.set(req.Value, true)
}

// Verify implements providers.Provider: the resource must accept the value.
func (p *Provider) Verify(ctx context.Context, req providers.VerifyRequest) (providers.VerifyResponse, error) {
	if err := p.behave(ctx, "verify"); err != nil {
		return providers.VerifyResponse{}, err
	}
	p.maybePanic("verify", req.Value)
	if !p.Valid(req.Value) {
		return providers.VerifyResponse{}, fmt.Errorf("version %s is not accepted by the resource", req.VersionID)
	}
	resp := providers.VerifyResponse{GrantedScope: p.granted(req.Scope), Evidence: map[string]string{"check": "resource accepts the value"}}
	if p.unreported("verify") {
		resp.GrantedScope, resp.ScopeNotReported = nil, true
	}
	return resp, nil
}

// Revoke implements providers.Provider: the resource stops accepting the value.
func (p *Provider) Revoke(ctx context.Context, req providers.RevokeRequest) error {
	if err := p.behave(ctx, "revoke"); err != nil {
		return err
	}
	p.maybePanic("revoke", req.Value)
	if req.Value.IsZero() {
		return nil
	}
	return p.set(req.Value, false)
}

var (
	_ providers.Provider = (*Provider)(nil)
	_ providers.Loginer  = (*Provider)(nil)
)
