// Package execplugin is the exec provider: an out-of-process provider in
// any language. For every step rotator runs the configured command with the
// step name appended (mint, activate, verify or revoke), writes one JSON
// request on its stdin and reads one JSON response from its stdout. The
// protocol, rotator.exec/v1, is documented in docs/plugins.md.
//
// The plugin runs in its own process group with a minimal environment
// (rotator's own environment, which may hold the master key, is not passed
// on) plus the configured env. At the timeout, or when the step is
// cancelled, the whole group is killed. Its stderr is logged line by line
// after every value of the call has been scrubbed from it; a non-zero exit
// fails the step with the plugin's message, scrubbed the same way.
package execplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/exec"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/providers"
)

// Type is the provider type name.
const Type = "exec"

// Protocol is the version of the request/response protocol.
const Protocol = "rotator.exec/v1"

// Step names, passed as the last argument and in the request.
const (
	StepMint     = "mint"
	StepActivate = "activate"
	StepVerify   = "verify"
	StepRevoke   = "revoke"
)

// Limits on what a plugin may print.
const (
	maxStdout = 1 << 20
	maxStderr = 64 << 10
)

// The factory declares the most an exec provider may claim; each provider
// reports what its overlap and revocable settings say (both false unless
// set), see Capabilities.
var factoryCapabilities = providers.Capabilities{Overlap: true, Revocable: true}

// Factory returns the registry entry of the exec provider.
func Factory() providers.Factory {
	return providers.Factory{
		Description:  "an external program speaking rotator.exec/v1 (JSON on stdin and stdout), in any language",
		Capabilities: factoryCapabilities,
		CapabilitiesOf: func(s settings.Map) providers.Capabilities {
			cfg, _ := parse(s)
			return providers.Capabilities{Overlap: cfg.Overlap, Revocable: cfg.Revocable}
		},
		ValidateProvider:   ValidateProvider,
		ValidateCredential: ValidateCredential,
		CheckHost:          CheckHost,
		New: func(_ context.Context, env providers.Env) (providers.Provider, error) {
			cfg, errs := parse(env.Settings)
			if len(errs) > 0 {
				return nil, fmt.Errorf("exec: %w: %w", providers.ErrPermanent, errs[0])
			}
			return New(cfg, env.Logger), nil
		},
	}
}

// Request is what rotator writes on the plugin's stdin.
type Request struct {
	Protocol       string         `json:"protocol"`
	Step           string         `json:"step"`
	CredentialID   string         `json:"credential_id"`
	VersionID      string         `json:"version_id"`
	IdempotencyKey string         `json:"idempotency_key"`
	Scope          []string       `json:"scope"`
	Settings       map[string]any `json:"settings"`
	// Value is the version's value: in activate, verify and revoke.
	Value *string `json:"value,omitempty"`
	// Metadata is the version's metadata: in activate, verify and revoke.
	Metadata map[string]string `json:"metadata,omitempty"`
	// ExpiresAt is the expiry the engine wants (activate), RFC 3339.
	ExpiresAt string `json:"expires_at,omitempty"`
	// Current is the version in use, if any (mint).
	Current *CurrentVersion `json:"current,omitempty"`
}

// CurrentVersion is the version in use, sent with mint.
type CurrentVersion struct {
	VersionID string            `json:"version_id"`
	Value     string            `json:"value,omitempty"`
	Metadata  map[string]string `json:"metadata,omitempty"`
}

// Response is what the plugin prints on stdout.
type Response struct {
	Value        *string           `json:"value,omitempty"`
	ExpiresAt    string            `json:"expires_at,omitempty"`
	GrantedScope []string          `json:"granted_scope,omitempty"`
	Metadata     map[string]string `json:"metadata,omitempty"`
	Evidence     map[string]string `json:"evidence,omitempty"`
	Error        string            `json:"error,omitempty"`
	Permanent    bool              `json:"permanent,omitempty"`
}

// ErrPlugin marks a failure the plugin reported (a non-zero exit or an
// error response), as opposed to one running it.
var ErrPlugin = errors.New("plugin failed")

// Provider runs one plugin command.
type Provider struct {
	cfg Config
	log *slog.Logger
}

// New returns an exec provider.
func New(cfg Config, logger *slog.Logger) *Provider {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	return &Provider{cfg: cfg, log: logger}
}

// Type implements providers.Provider.
func (p *Provider) Type() string { return Type }

// Capabilities implements providers.Provider: what the overlap and
// revocable settings declare.
func (p *Provider) Capabilities() providers.Capabilities {
	return providers.Capabilities{Overlap: p.cfg.Overlap, Revocable: p.cfg.Revocable}
}

func (p *Provider) request(step string, c providers.Common) Request {
	return Request{
		Protocol: Protocol, Step: step, CredentialID: c.CredentialID, VersionID: c.VersionID,
		IdempotencyKey: c.IdempotencyKey, Scope: nonNil(c.Scope), Settings: nonNilMap(c.Settings),
	}
}

// Mint implements providers.Provider.
func (p *Provider) Mint(ctx context.Context, req providers.MintRequest) (providers.MintResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.MintResponse{}, err
	}
	r := p.request(StepMint, req.Common)
	var known []secret.Value
	if cur := req.Current; cur != nil {
		r.Current = &CurrentVersion{VersionID: cur.VersionID, Value: cur.Value.RevealString(), Metadata: cur.Metadata}
		known = append(known, cur.Value)
	}
	resp, err := p.run(ctx, r, known)
	if err != nil {
		return providers.MintResponse{}, err
	}
	if resp.Value == nil || *resp.Value == "" {
		return providers.MintResponse{}, fmt.Errorf("exec plugin %s: mint: %w: the response has no value", p.name(), providers.ErrPermanent)
	}
	out := providers.MintResponse{Value: secret.NewString(*resp.Value), GrantedScope: resp.GrantedScope, Metadata: resp.Metadata}
	if resp.ExpiresAt != "" {
		t, err := time.Parse(time.RFC3339, resp.ExpiresAt)
		if err != nil {
			return providers.MintResponse{}, fmt.Errorf("exec plugin %s: mint: %w: expires_at is not an RFC 3339 time", p.name(), providers.ErrPermanent)
		}
		out.ExpiresAt = t.UTC()
	}
	return out, nil
}

// Activate implements providers.Provider.
func (p *Provider) Activate(ctx context.Context, req providers.ActivateRequest) (providers.ActivateResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.ActivateResponse{}, err
	}
	r := p.request(StepActivate, req.Common)
	r.Value, r.Metadata = ptr(req.Value.RevealString()), req.Metadata
	if !req.ExpiresAt.IsZero() {
		r.ExpiresAt = req.ExpiresAt.UTC().Format(time.RFC3339)
	}
	resp, err := p.run(ctx, r, []secret.Value{req.Value})
	if err != nil {
		return providers.ActivateResponse{}, err
	}
	return providers.ActivateResponse{Metadata: resp.Metadata}, nil
}

// Verify implements providers.Provider.
func (p *Provider) Verify(ctx context.Context, req providers.VerifyRequest) (providers.VerifyResponse, error) {
	if err := ctx.Err(); err != nil {
		return providers.VerifyResponse{}, err
	}
	r := p.request(StepVerify, req.Common)
	r.Value, r.Metadata = ptr(req.Value.RevealString()), req.Metadata
	resp, err := p.run(ctx, r, []secret.Value{req.Value})
	if err != nil {
		return providers.VerifyResponse{}, err
	}
	return providers.VerifyResponse{GrantedScope: resp.GrantedScope, Evidence: resp.Evidence}, nil
}

// Revoke implements providers.Provider.
func (p *Provider) Revoke(ctx context.Context, req providers.RevokeRequest) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := p.request(StepRevoke, req.Common)
	r.Value, r.Metadata = ptr(req.Value.RevealString()), req.Metadata
	_, err := p.run(ctx, r, []secret.Value{req.Value})
	return err
}

func (p *Provider) name() string {
	if len(p.cfg.Command) == 0 {
		return ""
	}
	return p.cfg.Command[0]
}

// run executes the plugin for one step. known are the secret values of the
// request; they, the configured env secrets and the value of the response
// are scrubbed from everything the plugin prints before it is logged or put
// in an error.
func (p *Provider) run(ctx context.Context, req Request, known []secret.Value) (Response, error) {
	red := &secret.Redactor{}
	for _, v := range known {
		red.Register(v)
	}
	for _, v := range p.cfg.Env {
		red.Register(v)
	}
	body, err := json.Marshal(req)
	if err != nil {
		return Response{}, fmt.Errorf("exec plugin %s: %s: encoding the request: %w", p.name(), req.Step, err)
	}
	defer clear(body)

	rctx, cancel := context.WithTimeoutCause(ctx, p.cfg.Timeout, fmt.Errorf("exec plugin %s: %s timed out after %s", p.name(), req.Step, p.cfg.Timeout))
	defer cancel()
	stdout := &capped{max: maxStdout}
	stderr := &capped{max: maxStderr}
	start := time.Now()
	cmd, runErr := p.start(rctx, req.Step, body, stdout, stderr)
	if cmd.Process != nil {
		// A plugin must not leave processes behind: whatever it started and
		// did not wait for dies with the step.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
	defer clear(stdout.buf.Bytes())
	defer clear(stderr.buf.Bytes())

	var resp Response
	parseErr := json.Unmarshal(bytes.TrimSpace(stdout.buf.Bytes()), &resp)
	if parseErr == nil && resp.Value != nil {
		red.Register(secret.NewString(*resp.Value))
	}
	p.logStderr(red, req.Step, stderr)
	log := p.log.With(slog.String("step", req.Step), slog.Duration("took", time.Since(start)))

	if cerr := rctx.Err(); cerr != nil {
		// Timed out or cancelled: the parent's cancellation, or our timeout.
		cause := context.Cause(rctx)
		log.Warn("exec plugin stopped", slog.String("error", red.Scrub(cause.Error())))
		if ctx.Err() != nil {
			return Response{}, fmt.Errorf("exec plugin %s: %s: %w", p.name(), req.Step, ctx.Err())
		}
		return Response{}, fmt.Errorf("%w: %w", cause, context.DeadlineExceeded)
	}
	var exitErr *exec.ExitError
	switch {
	case errors.As(runErr, &exitErr):
		msg := resp.Error
		if parseErr != nil || msg == "" {
			msg = lastLine(stderr.buf.String())
		}
		if msg == "" {
			msg = "no message"
		}
		err := fmt.Errorf("exec plugin %s: %s: exited with status %d: %s", p.name(), req.Step, exitErr.ExitCode(), red.Scrub(msg))
		return Response{}, p.classify(err, resp.Permanent)
	case errors.Is(runErr, syscall.ETXTBSY):
		// Still open for writing after the retries: being replaced, try later.
		return Response{}, fmt.Errorf("exec plugin %s: %s: %w: %s", p.name(), req.Step, ErrPlugin, red.Scrub(runErr.Error()))
	case runErr != nil:
		// Could not start it (not found, not executable): fix the config.
		return Response{}, fmt.Errorf("exec plugin %s: %s: %w: %s", p.name(), req.Step, providers.ErrPermanent, red.Scrub(runErr.Error()))
	case stdout.over:
		return Response{}, fmt.Errorf("exec plugin %s: %s: %w: the response is larger than %d bytes", p.name(), req.Step, providers.ErrPermanent, maxStdout)
	case parseErr != nil:
		// The JSON error can quote the output, which may hold a value.
		return Response{}, fmt.Errorf("exec plugin %s: %s: %w: stdout is not one JSON object (%s)", p.name(), req.Step, providers.ErrPermanent, Protocol)
	case resp.Error != "":
		err := fmt.Errorf("exec plugin %s: %s: %s", p.name(), req.Step, red.Scrub(resp.Error))
		return Response{}, p.classify(err, resp.Permanent)
	}
	log.Debug("exec plugin step done")
	return resp, nil
}

// start starts the plugin for step and waits for it. A start that fails with
// ETXTBSY is retried briefly: the executable is open for writing somewhere,
// either because it is being replaced right now or because another process
// forked while holding it open (golang/go#22315); both pass within moments,
// and neither is a reason to fail the step.
func (p *Provider) start(ctx context.Context, step string, body []byte, stdout, stderr io.Writer) (*exec.Cmd, error) {
	argv := p.cfg.Command
	backoff := 5 * time.Millisecond
	for attempt := 1; ; attempt++ {
		cmd := exec.CommandContext(ctx, argv[0], append(slices.Clone(argv[1:]), step)...) //nolint:gosec // G204: running the operator's configured plugin is the point
		cmd.Dir = p.cfg.Dir
		cmd.Env = p.environ(step)
		cmd.Stdin = bytes.NewReader(body)
		cmd.Stdout, cmd.Stderr = stdout, stderr
		// Its own process group, so that a timeout kills whatever it started.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 2 * time.Second
		err := cmd.Start()
		if err == nil {
			err = cmd.Wait()
			return cmd, err
		}
		if !errors.Is(err, syscall.ETXTBSY) || attempt == startAttempts {
			return cmd, err
		}
		select {
		case <-ctx.Done():
			return cmd, err
		case <-time.After(backoff):
		}
		backoff *= 2
	}
}

// startAttempts bounds the ETXTBSY retries of start (about 1.3 s in all).
const startAttempts = 9

func (p *Provider) classify(err error, permanent bool) error {
	if permanent {
		return fmt.Errorf("%w: %w: %w", err, ErrPlugin, providers.ErrPermanent)
	}
	return fmt.Errorf("%w: %w", err, ErrPlugin)
}

// baseEnv are the variables of rotator's environment a plugin inherits.
var baseEnv = []string{"PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR"}

func (p *Provider) environ(step string) []string {
	env := make([]string, 0, len(baseEnv)+len(p.cfg.Env)+2)
	for _, k := range baseEnv {
		if v, ok := os.LookupEnv(k); ok {
			env = append(env, k+"="+v)
		}
	}
	if _, ok := os.LookupEnv("PATH"); !ok {
		env = append(env, "PATH=/usr/local/bin:/usr/bin:/bin")
	}
	env = append(env, "ROTATOR_EXEC_PROTOCOL="+Protocol, "ROTATOR_STEP="+step)
	for _, k := range slices.Sorted(maps.Keys(p.cfg.Env)) {
		env = append(env, k+"="+p.cfg.Env[k].RevealString())
	}
	return env
}

// logStderr logs what the plugin wrote on stderr, one record per line,
// through the redactor's writer.
func (p *Provider) logStderr(red *secret.Redactor, step string, stderr *capped) {
	if stderr.buf.Len() == 0 {
		return
	}
	w := red.Writer(&lineLogger{log: p.log, step: step})
	_, _ = w.Write(stderr.buf.Bytes())
	if stderr.over {
		_, _ = io.WriteString(w, "\n[stderr truncated]\n")
	}
	_ = w.Flush()
}

type lineLogger struct {
	log  *slog.Logger
	step string
}

func (l *lineLogger) Write(b []byte) (int, error) {
	for line := range strings.SplitSeq(strings.TrimRight(string(b), "\n"), "\n") {
		if strings.TrimSpace(line) != "" {
			l.log.Info("exec plugin stderr", slog.String("step", l.step), slog.String("line", line))
		}
	}
	return len(b), nil
}

// capped is a buffer that keeps at most max bytes and notes the overflow.
type capped struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(b []byte) (int, error) {
	n := len(b)
	if room := c.max - c.buf.Len(); room < n {
		c.over = true
		b = b[:max(room, 0)]
	}
	c.buf.Write(b)
	return n, nil // the rest is dropped, not refused: the plugin must not block
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}

func ptr(s string) *string { return &s }

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func nonNilMap(m map[string]any) map[string]any {
	if m == nil {
		return map[string]any{}
	}
	return m
}

var _ providers.Provider = (*Provider)(nil)
