package exec

import (
	"errors"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"strings"
	"syscall"
	"time"
)

// child is one run of the wrapped command.
type child struct {
	cmd *osexec.Cmd
	// in and out are its stdin and stdout when exec relays them (restart
	// mode); nil when the child has exec's own.
	in      *queue
	outRead *os.File
	// exited is closed when the process has been waited for; state is
	// then set.
	exited chan struct{}
	state  *os.ProcessState
	// stopping: exec asked it to stop (a switch, or the end); its exit is
	// expected.
	stopping bool
	killer   *time.Timer
}

// childSpec is how to start a child.
type childSpec struct {
	path   string
	args   []string
	env    []string
	stdin  io.Reader // nil: relayed through a pipe
	stdout io.Writer // nil: relayed through a pipe
	stderr io.Writer
}

// stdoutDrain bounds how long a child's exit waits for the rest of its
// relayed stdout.
const stdoutDrain = time.Second

// startChild starts a child; with relayed pipes, onLine receives each line
// it writes on stdout (from a goroutine) and onEOF is called when its
// stdout ends. onExit is called from a goroutine after the process ended.
func startChild(s childSpec, onLine func(*child, []byte), onEOF func(*child), onExit func(*child)) (*child, error) {
	c := &child{exited: make(chan struct{})}
	cmd := osexec.Command(s.path, s.args[1:]...)
	cmd.Args[0] = s.args0()
	cmd.Env = s.env
	cmd.Stderr = s.stderr
	cmd.SysProcAttr = sysProcAttr()
	var inW, outR, inR, outW *os.File
	var err error
	if s.stdin == nil {
		if inR, inW, err = os.Pipe(); err != nil {
			return nil, err
		}
		if outR, outW, err = os.Pipe(); err != nil {
			_ = inR.Close()
			_ = inW.Close()
			return nil, err
		}
		cmd.Stdin, cmd.Stdout = inR, outW
	} else {
		cmd.Stdin, cmd.Stdout = s.stdin, s.stdout
	}
	c.cmd = cmd
	err = cmd.Start()
	if inR != nil {
		// The child holds its ends now (or failed to start).
		_ = inR.Close()
		_ = outW.Close()
	}
	if err != nil {
		if inW != nil {
			_ = inW.Close()
			_ = outR.Close()
		}
		return nil, startError(s.path, err)
	}
	var outDone chan struct{}
	if inW != nil {
		c.in = newQueue(inW, inW.Close)
		c.outRead = outR
		outDone = make(chan struct{})
		go func() {
			_ = readLines(outR, func(l []byte) { onLine(c, l) })
			_ = outR.Close()
			onEOF(c)
			close(outDone)
		}()
	}
	go func() {
		_ = cmd.Wait()
		c.state = cmd.ProcessState
		close(c.exited)
		if outDone != nil {
			// The lines the child wrote just before it exited are still
			// in the pipe: report the exit after them. A grandchild that
			// keeps the pipe open does not hold the exit back for long.
			t := time.NewTimer(stdoutDrain)
			select {
			case <-outDone:
			case <-t.C:
			}
			t.Stop()
		}
		onExit(c)
	}()
	return c, nil
}

// args0 is the child's argv[0]: the command as the user wrote it.
func (s childSpec) args0() string { return s.args[0] }

// startError explains why the command could not start.
func startError(path string, err error) error {
	switch {
	case errors.Is(err, osexec.ErrNotFound):
		return fmt.Errorf("command %q not found in PATH", path)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("command %q is not executable: %w", path, err)
	}
	return fmt.Errorf("starting %q: %w", path, err)
}

// signal sends sig to the child unless it has exited.
func (c *child) signal(sig os.Signal) {
	select {
	case <-c.exited:
	default:
		_ = c.cmd.Process.Signal(sig)
	}
}

// stop closes the child's stdin, sends SIGTERM, and SIGKILL after grace
// if it still runs.
func (c *child) stop(grace time.Duration) {
	if c.stopping {
		return
	}
	c.stopping = true
	if c.in != nil {
		c.in.Close()
	}
	c.signal(syscall.SIGTERM)
	c.killer = time.AfterFunc(grace, func() { c.signal(syscall.SIGKILL) })
}

// exitCode is the code exec exits with for this child's end: its own, or
// 128 + the signal that killed it (the shell's convention).
func (c *child) exitCode() int {
	if c.state == nil {
		return 1
	}
	if ws, ok := c.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return 128 + int(ws.Signal())
	}
	return c.state.ExitCode()
}

// describe says how the child ended, for stderr.
func (c *child) describe() string {
	if c.state == nil {
		return "did not start"
	}
	if ws, ok := c.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return fmt.Sprintf("was killed by signal %s", ws.Signal())
	}
	return fmt.Sprintf("exited with code %d", c.state.ExitCode())
}

// childEnv is base without the dropped names, with the given variables
// set (replacing any of the same name).
func childEnv(base []string, drop []string, set map[string]string) []string {
	skip := map[string]bool{}
	for _, n := range drop {
		skip[n] = true
	}
	for n := range set {
		skip[n] = true
	}
	out := make([]string, 0, len(base)+len(set))
	for _, kv := range base {
		name, _, _ := strings.Cut(kv, "=")
		if !skip[name] {
			out = append(out, kv)
		}
	}
	for n, v := range set {
		out = append(out, n+"="+v)
	}
	return out
}
