// Package exec runs a stdio MCP server with credentials delivered in its
// environment or in files (`rotator exec`, DESIGN.md §10), and carries it
// through every cutover of those credentials without the MCP client
// noticing.
//
// In restart mode exec sits on the child's stdin and stdout: it reads the
// newline-delimited JSON-RPC of the MCP stdio transport in both directions
// and tracks the requests in flight. On a cutover it starts a new child
// with the new values and replays the client's initialize handshake to it
// (swallowing the answer) while the old child goes on serving with the
// previous value, still valid in its grace period. Once the new child is
// ready, exec holds the client's new requests until no request is in
// flight on the old one (at the latest until the grace period is about to
// end), passes the held requests to the new child and stops the old one.
// The client's pause is the old child's drain, not the new one's start. In
// signal mode exec rewrites the files and signals the child; in none mode it
// only rewrites the files.
//
// Values go to the child only. exec prints ids, versions and fingerprints,
// never a value.
package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rotatorhq/rotator/internal/delivery"
)

// purpose is recorded in the value.read events of exec's reads.
const purpose = "exec"

// evKind names an event of the loop.
type evKind int

const (
	evClientLine evKind = iota
	evClientEOF
	evChildLine
	evChildExit
	evRotated
)

type event struct {
	kind  evKind
	child *child
	line  []byte
	cur   delivery.Current
	// graceEnd is when the previous version of cur's credential stops
	// being valid (estimated); zero when unknown.
	graceEnd time.Time
	detected time.Time
}

// runner is one `rotator exec`: its children and the session it relays.
type runner struct {
	opts   Options
	path   string
	events chan event
	quit   chan struct{}
	sayMu  sync.Mutex
	stderr io.Writer // the child's stderr (scrubbed when a Redactor is set)

	values map[string]delivery.Current // newest version of each credential
	cur    *child

	done     bool
	exitCode int
	ending   bool // a SIGINT/SIGTERM, the context or the client's EOF

	relay *relay // restart mode only
}

// Run starts the command with the current values and keeps it supplied
// with them until it exits. It returns the exit code exec should end
// with: the child's own, or 128+N when signal N killed it. An error means
// the child did not start (a credential that cannot be read, a command
// not found, a file that cannot be written).
func Run(ctx context.Context, opts Options) (int, error) {
	if err := opts.defaults(); err != nil {
		return 0, err
	}
	path, err := osexec.LookPath(opts.Command[0])
	if err != nil {
		return 0, startError(opts.Command[0], err)
	}
	r := &runner{
		opts: opts, path: path, events: make(chan event, 64), quit: make(chan struct{}),
		values: map[string]delivery.Current{},
	}
	defer close(r.quit)
	for _, id := range opts.credentials() {
		cur, err := opts.Source.Read(ctx, delivery.ReadRequest{CredentialID: id, Purpose: purpose})
		if err != nil {
			return 0, err // it names the credential
		}
		r.learn(cur)
		r.values[id] = cur
	}
	r.stderr = opts.Stderr
	var scrub interface{ Flush() error }
	if opts.Redactor != nil {
		sw := opts.Redactor.Writer(opts.Stderr)
		r.stderr, scrub = sw, sw
	}
	if opts.OnRotate.Kind == ModeRestart {
		r.relay = newRelay(r)
	}
	first, err := r.start()
	if err != nil {
		r.removeFiles()
		if r.relay != nil {
			r.relay.out.Close()
		}
		return 0, err
	}
	r.cur = first
	if r.relay != nil {
		go r.readClient()
	}
	wctx, stopWatch := context.WithCancel(ctx)
	var watchers sync.WaitGroup
	for id, cur := range r.values {
		watchers.Add(1)
		go func() {
			defer watchers.Done()
			r.watch(wctx, id, cur)
		}()
	}
	code := r.loop(ctx)
	stopWatch()
	watchers.Wait()
	r.removeFiles()
	if r.relay != nil {
		r.relay.close()
	}
	if scrub != nil {
		_ = scrub.Flush()
	}
	return code, nil
}

// learn tells the redactor a value.
func (r *runner) learn(cur delivery.Current) {
	if r.opts.Redactor != nil {
		r.opts.Redactor.Register(cur.Value)
	}
}

// say writes one message on stderr, scrubbed of any known value.
func (r *runner) say(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	if r.opts.Redactor != nil {
		msg = r.opts.Redactor.Scrub(msg)
	}
	r.sayMu.Lock()
	defer r.sayMu.Unlock()
	fmt.Fprintf(r.opts.Stderr, "rotator exec: %s\n", msg)
}

// send hands an event to the loop, unless exec has ended.
func (r *runner) send(ev event) {
	select {
	case r.events <- ev:
	case <-r.quit:
	}
}

// start writes the files and starts a child with the newest values.
func (r *runner) start() (*child, error) {
	if err := r.writeFiles(); err != nil {
		return nil, err
	}
	set := map[string]string{}
	for _, b := range r.opts.Env {
		v := r.values[b.Credential].Value.RevealString()
		if strings.IndexByte(v, 0) >= 0 {
			return nil, fmt.Errorf("--env %s: the value of credential %q holds a NUL byte, which an environment variable cannot; deliver it with --file", b.Name, b.Credential)
		}
		set[b.Name] = v
	}
	spec := childSpec{
		path: r.path, args: r.opts.Command, env: childEnv(r.opts.Environ, r.opts.DropEnv, set),
		stdin: r.opts.Stdin, stdout: r.opts.Stdout, stderr: r.stderr,
	}
	if r.relay != nil {
		spec.stdin, spec.stdout = nil, nil
	}
	c, err := startChild(spec,
		func(c *child, l []byte) { r.send(event{kind: evChildLine, child: c, line: l}) },
		func(*child) {},
		func(c *child) { r.send(event{kind: evChildExit, child: c}) })
	if err != nil {
		return nil, err
	}
	return c, nil
}

// writeFiles writes every --file with its credential's newest value.
func (r *runner) writeFiles() error {
	for _, b := range r.opts.Files {
		if err := writeFile(b.Name, r.values[b.Credential].Value.Reveal()); err != nil {
			return err
		}
	}
	return nil
}

// removeFiles removes the --file paths: no value outlives exec on disk.
func (r *runner) removeFiles() {
	for _, b := range r.opts.Files {
		if err := os.Remove(b.Name); err != nil && !errors.Is(err, os.ErrNotExist) {
			r.say("could not remove %s: %v", b.Name, err)
		}
	}
}

// readClient passes the client's lines (exec's stdin) to the loop.
func (r *runner) readClient() {
	err := readLines(r.opts.Stdin, func(l []byte) { r.send(event{kind: evClientLine, line: l}) })
	if err != nil {
		r.say("reading the MCP client's messages: %v", err)
	}
	r.send(event{kind: evClientEOF})
}

// watch waits for cutovers of one credential and reports each to the
// loop, with when the previous version's grace ends.
func (r *runner) watch(ctx context.Context, id string, prev delivery.Current) {
	backoff := time.Second
	for {
		cur, err := r.opts.Source.Watch(ctx, delivery.WatchRequest{CredentialID: id, AfterVersionID: prev.VersionID, Purpose: purpose})
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			r.say("watching credential %q failed (trying again in %s): %v", id, backoff, err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 30*time.Second)
			continue
		}
		backoff = time.Second
		r.learn(cur)
		r.send(event{kind: evRotated, cur: cur, detected: time.Now(), graceEnd: r.graceEnd(ctx, prev, cur)})
		prev = cur
	}
}

// graceEnd is when prev stops being valid after the cutover to cur: the
// end of its grace period, or its expiry if sooner; zero when neither is
// known.
func (r *runner) graceEnd(ctx context.Context, prev, cur delivery.Current) time.Time {
	var end time.Time
	if r.opts.GraceEnd != nil {
		if t, err := r.opts.GraceEnd(ctx, cur.CredentialID, cur.VersionID); err == nil {
			end = t
		}
	}
	if !prev.ExpiresAt.IsZero() && (end.IsZero() || prev.ExpiresAt.Before(end)) {
		end = prev.ExpiresAt
	}
	return end
}

// loop runs until the child exits, and returns exec's exit code.
func (r *runner) loop(ctx context.Context) int {
	ctxDone := ctx.Done()
	for !r.done {
		var relayTimer <-chan time.Time
		if r.relay != nil {
			relayTimer = r.relay.timer()
		}
		select {
		case ev := <-r.events:
			r.handle(ev)
		case sig := <-r.opts.Signals:
			r.forward(sig)
		case <-ctxDone:
			ctxDone = nil
			r.end()
		case <-relayTimer:
			r.relay.onTimer()
		}
	}
	return r.exitCode
}

func (r *runner) handle(ev event) {
	switch ev.kind {
	case evChildExit:
		r.childExited(ev.child)
	case evRotated:
		r.rotated(ev)
	case evClientLine:
		r.relay.fromClient(ev.line)
	case evClientEOF:
		r.relay.clientEOF()
	case evChildLine:
		r.relay.fromChild(ev.child, ev.line)
	}
}

// forward passes a signal on. SIGINT and SIGTERM go to every child (exec
// ends with the current one); other signals to the current child only.
func (r *runner) forward(sig os.Signal) {
	if sig == syscall.SIGINT || sig == syscall.SIGTERM {
		r.ending = true
		if r.relay != nil {
			r.relay.signalOthers(sig)
		}
	}
	r.cur.signal(sig)
}

// end stops the current child (and any other) because exec is ending.
func (r *runner) end() {
	r.ending = true
	if r.relay != nil {
		r.relay.stopOthers()
	}
	r.cur.stop(r.opts.StopTimeout)
}

// childExited handles the end of a child.
func (r *runner) childExited(c *child) {
	if c.killer != nil {
		c.killer.Stop()
	}
	if c != r.cur {
		if r.relay != nil {
			r.relay.otherExited(c)
		}
		return
	}
	if !r.ending && !c.stopping && c.exitCode() != 0 {
		r.say("the server %s", c.describe())
	}
	if r.relay != nil {
		r.relay.stopOthers()
	}
	r.exitCode = c.exitCode()
	r.done = true
}

// rotated handles a cutover the watch saw.
func (r *runner) rotated(ev event) {
	id := ev.cur.CredentialID
	old := r.values[id]
	if old.VersionID == ev.cur.VersionID {
		return
	}
	r.values[id] = ev.cur
	switch r.opts.OnRotate.Kind {
	case ModeRestart:
		r.relay.rotated(ev, old)
	case ModeSignal, ModeNone:
		if err := r.writeFiles(); err != nil {
			r.say("credential %q rotated to version %s, but %v; the server keeps the previous value", id, ev.cur.VersionID, err)
			return
		}
		if r.opts.OnRotate.Kind == ModeSignal {
			r.cur.signal(r.opts.OnRotate.Signal)
			r.say("credential %q rotated to version %s (fingerprint %s): files rewritten, sent SIG%s to the server",
				id, ev.cur.VersionID, ev.cur.Fingerprint, signalName(r.opts.OnRotate.Signal))
		} else {
			r.say("credential %q rotated to version %s (fingerprint %s): files rewritten", id, ev.cur.VersionID, ev.cur.Fingerprint)
		}
		for _, b := range r.opts.Env {
			if b.Credential == id {
				r.say("--env %s keeps the previous value of %q until the server restarts (--on-rotate %s does not restart it)", b.Name, id, r.opts.OnRotate)
			}
		}
	}
}
