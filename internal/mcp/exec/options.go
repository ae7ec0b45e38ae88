package exec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/secret"
)

// ModeKind is what exec does on a cutover.
type ModeKind string

// Modes of --on-rotate.
const (
	// ModeRestart restarts the child with the new values once no request
	// is in flight, invisibly to the MCP client.
	ModeRestart ModeKind = "restart"
	// ModeSignal rewrites the --file paths and sends the child a signal.
	ModeSignal ModeKind = "signal"
	// ModeNone only rewrites the --file paths.
	ModeNone ModeKind = "none"
)

// Mode is a parsed --on-rotate.
type Mode struct {
	Kind ModeKind
	// Signal is sent in ModeSignal.
	Signal syscall.Signal
}

// String renders m as --on-rotate takes it.
func (m Mode) String() string {
	if m.Kind == ModeSignal {
		return "signal:" + signalName(m.Signal)
	}
	return string(m.Kind)
}

// signals are the names signal:NAME accepts.
var signals = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "TERM": syscall.SIGTERM,
	"USR1": syscall.SIGUSR1, "USR2": syscall.SIGUSR2, "ALRM": syscall.SIGALRM, "WINCH": syscall.SIGWINCH,
}

func signalName(s syscall.Signal) string {
	for n, v := range signals {
		if v == s {
			return n
		}
	}
	return fmt.Sprint(int(s))
}

// ParseOnRotate parses --on-rotate: restart, none, or signal:NAME (HUP,
// USR1, ...; with or without SIG).
func ParseOnRotate(s string) (Mode, error) {
	switch {
	case s == string(ModeRestart):
		return Mode{Kind: ModeRestart}, nil
	case s == string(ModeNone):
		return Mode{Kind: ModeNone}, nil
	case strings.HasPrefix(s, "signal:"):
		name := strings.TrimPrefix(strings.ToUpper(strings.TrimPrefix(s, "signal:")), "SIG")
		if sig, ok := signals[name]; ok {
			return Mode{Kind: ModeSignal, Signal: sig}, nil
		}
		return Mode{}, fmt.Errorf("--on-rotate %q: unknown signal; use one of signal:HUP, signal:USR1, signal:USR2, signal:INT, signal:TERM, signal:QUIT, signal:ALRM, signal:WINCH", s)
	}
	return Mode{}, fmt.Errorf("--on-rotate %q: use restart, signal:NAME (for example signal:HUP) or none", s)
}

// Binding delivers one credential: as the environment variable Name, or
// in the file at path Name.
type Binding struct {
	Name       string
	Credential string
}

// ParseEnv parses --env NAME=CRED.
func ParseEnv(s string) (Binding, error) {
	name, cred, ok := strings.Cut(s, "=")
	if !ok || name == "" || cred == "" {
		return Binding{}, fmt.Errorf("--env %q: use NAME=CREDENTIAL, for example --env GITHUB_TOKEN=github-mcp-token", s)
	}
	if !envName(name) {
		return Binding{}, fmt.Errorf("--env %q: %q is not a valid variable name (letters, digits and _, not starting with a digit)", s, name)
	}
	return Binding{Name: name, Credential: cred}, nil
}

// ParseFile parses --file PATH=CRED (the last = separates them, so a path
// may hold one).
func ParseFile(s string) (Binding, error) {
	i := strings.LastIndexByte(s, '=')
	if i <= 0 || i == len(s)-1 {
		return Binding{}, fmt.Errorf("--file %q: use PATH=CREDENTIAL, for example --file /run/mcp/token=github-mcp-token", s)
	}
	path, cred := s[:i], s[i+1:]
	if fi, err := os.Stat(filepath.Dir(path)); err != nil || !fi.IsDir() {
		return Binding{}, fmt.Errorf("--file %q: the directory %s does not exist", s, filepath.Dir(path))
	}
	return Binding{Name: path, Credential: cred}, nil
}

func envName(s string) bool {
	for i, c := range s {
		if c != '_' && (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') && (i == 0 || c < '0' || c > '9') {
			return false
		}
	}
	return s != ""
}

// Defaults of Options.
const (
	DefaultDrainTimeout = 30 * time.Second
	DefaultStopTimeout  = 5 * time.Second
	DefaultStartTimeout = 30 * time.Second
)

// Options configures Run.
type Options struct {
	// Source reads the values and watches for cutovers.
	Source delivery.Source
	// Recorder records exec's audit events (a switch that came too late);
	// when nil, Source is used if it is a Recorder.
	Recorder delivery.Recorder
	// Command is the child's argv; Command[0] is looked up in PATH.
	Command []string
	// Env and Files bind credentials to variables and to files.
	Env, Files []Binding
	// OnRotate is what to do on a cutover.
	OnRotate Mode
	// GraceEnd returns when the version before version of a credential
	// stops being valid (the cutover plus the credential's grace period);
	// see StoreGraceEnd. Nil, an error or a zero time: unknown, and
	// DrainTimeout bounds the wait for an idle child instead.
	GraceEnd func(ctx context.Context, credentialID, version string) (time.Time, error)
	// DrainTimeout bounds the wait for the child to go idle when the grace
	// period is unknown, and how long a child stopped with requests in
	// flight may take to finish them.
	DrainTimeout time.Duration
	// StopTimeout is how long a child has between SIGTERM and SIGKILL.
	StopTimeout time.Duration
	// StartTimeout bounds a new child's start (its answer to the replayed
	// initialize).
	StartTimeout time.Duration
	// Stdin, Stdout and Stderr are exec's own (the MCP client's pipes).
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Environ is the environment the child inherits (os.Environ() when
	// nil), less DropEnv and the master key variables.
	Environ []string
	DropEnv []string
	// Signals are forwarded to the child; the caller subscribes them
	// (signal.Notify). SIGINT and SIGTERM end exec once the child ends.
	Signals <-chan os.Signal
	// Redactor, when set, learns every value read, and scrubs exec's own
	// messages and the child's stderr.
	Redactor *secret.Redactor
	// OnSwitch, when set, is told of every restart (for tests and
	// benchmarks).
	OnSwitch func(Switch)
}

// Switch describes one restart of the child for a cutover.
type Switch struct {
	// Credentials are the ids whose new versions the new child has.
	Credentials []string
	// Detected is when the first of those cutovers was seen; Decided when
	// the new child was started (the old one serving meanwhile); Ready when
	// it had answered the replayed initialize (or was started, without
	// one), from when the client's new messages are held until the old
	// child is idle; Switched when the client's pipes were moved to it.
	Detected, Decided, Ready, Switched time.Time
	// Forced: the previous child still had requests in flight when the
	// grace period ran out.
	Forced bool
	// Held is how many client lines were held during the switch.
	Held int
}

// defaults fills zero fields and checks the rest.
func (o *Options) defaults() error {
	if o.Source == nil {
		return errors.New("exec: no source")
	}
	if len(o.Command) == 0 {
		return errors.New("no command given: put it after --, for example: rotator exec --env TOKEN=cred -- npx -y server")
	}
	if len(o.Env) == 0 && len(o.Files) == 0 {
		return errors.New("nothing to deliver: give at least one --env NAME=CREDENTIAL or --file PATH=CREDENTIAL")
	}
	seen := map[string]bool{}
	for _, b := range o.Env {
		if seen["env:"+b.Name] {
			return fmt.Errorf("--env %s is given twice", b.Name)
		}
		seen["env:"+b.Name] = true
	}
	for _, b := range o.Files {
		abs, _ := filepath.Abs(b.Name)
		if seen["file:"+abs] {
			return fmt.Errorf("--file %s is given twice", b.Name)
		}
		seen["file:"+abs] = true
	}
	if o.OnRotate.Kind == "" {
		o.OnRotate = Mode{Kind: ModeRestart}
	}
	if o.Recorder == nil {
		o.Recorder, _ = o.Source.(delivery.Recorder)
	}
	if o.DrainTimeout <= 0 {
		o.DrainTimeout = DefaultDrainTimeout
	}
	if o.StopTimeout <= 0 {
		o.StopTimeout = DefaultStopTimeout
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	if o.Stdin == nil {
		o.Stdin = os.Stdin
	}
	if o.Stdout == nil {
		o.Stdout = os.Stdout
	}
	if o.Stderr == nil {
		o.Stderr = os.Stderr
	}
	if o.Environ == nil {
		o.Environ = os.Environ()
	}
	o.DropEnv = append(o.DropEnv, secret.EnvMasterKey, secret.EnvMasterKeyFile, secret.EnvMasterKeyPrevious)
	return nil
}

// credentials returns the distinct credential ids of the bindings, in
// order of first use.
func (o *Options) credentials() []string {
	var ids []string
	seen := map[string]bool{}
	for _, b := range append(append([]Binding{}, o.Env...), o.Files...) {
		if !seen[b.Credential] {
			seen[b.Credential] = true
			ids = append(ids, b.Credential)
		}
	}
	return ids
}
