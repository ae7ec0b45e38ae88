package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"golang.org/x/term"
)

// envForceTTY makes rotator treat standard output and standard error as
// terminals (colour, fitted tables, in-place progress) when they are pipes:
// for tools that capture a terminal session, and for tests.
const envForceTTY = "ROTATOR_FORCE_TTY"

// defaultWidth is the table width on a terminal whose size is unknown.
const defaultWidth = 80

// terminal is what rotator knows of where its output goes.
type terminal struct {
	// outTTY and errTTY report whether stdout and stderr are terminals.
	outTTY, errTTY bool
	// width is how many columns a table row may use on stdout; 0 means no
	// limit (not a terminal and COLUMNS unset).
	width int
	// colour and errColour report whether stdout and stderr may carry
	// colour: a terminal, NO_COLOR unset or empty, TERM not "dumb".
	colour, errColour bool
}

// detectTerminal inspects the output streams and the environment: COLUMNS
// (when set, tables fit it even on a pipe), NO_COLOR, TERM and
// ROTATOR_FORCE_TTY.
func detectTerminal(stdout, stderr io.Writer, getenv func(string) string) terminal {
	forced := false
	switch strings.ToLower(strings.TrimSpace(getenv(envForceTTY))) {
	case "", "0", "false", "no":
	default:
		forced = true
	}
	t := terminal{outTTY: forced || isTTY(stdout), errTTY: forced || isTTY(stderr)}
	if n, err := strconv.Atoi(strings.TrimSpace(getenv("COLUMNS"))); err == nil && n > 0 {
		t.width = n
	} else if t.outTTY {
		t.width = defaultWidth
		if fd, ok := fileDescriptor(stdout); ok && term.IsTerminal(fd) {
			if w, _, err := term.GetSize(fd); err == nil && w > 0 {
				t.width = w
			}
		}
	}
	plain := getenv("NO_COLOR") != "" || getenv("TERM") == "dumb"
	t.colour = t.outTTY && !plain
	t.errColour = t.errTTY && !plain
	return t
}

// isTTY reports whether w is a terminal (through a stickyWriter).
func isTTY(w io.Writer) bool {
	fd, ok := fileDescriptor(w)
	return ok && term.IsTerminal(fd)
}

// fileDescriptor returns the descriptor of an *os.File behind w.
func fileDescriptor(w io.Writer) (int, bool) {
	if s, ok := w.(*stickyWriter); ok {
		w = s.w
	}
	f, ok := w.(interface{ Fd() uintptr })
	if !ok {
		return 0, false
	}
	return int(f.Fd()), true
}

// SGR colours.
const (
	colourRed    = "31"
	colourGreen  = "32"
	colourYellow = "33"
	colourBold   = "1"
)

// paint wraps s in an SGR colour when on and colour is set.
func paint(on bool, colour, s string) string {
	if !on || colour == "" || s == "" {
		return s
	}
	return "\x1b[" + colour + "m" + s + "\x1b[0m"
}

// stateColour colours credential statuses and run states: green when all
// is well, yellow while something is under way or due, red when it needs
// someone.
func stateColour(s string) string {
	switch s {
	case "healthy", "succeeded", "ok", "delivered":
		return colourGreen
	case "failing", "overdue", "expired", "needs_attention", "failed", "rolled_back", "rolling_back", "error":
		return colourRed
	case "", "-":
		return ""
	}
	return colourYellow
}

// progress shows a status line on a stream: on a terminal the line is
// rewritten in place; elsewhere (a log file, CI) a new line is printed at
// most once per interval, and always by done.
type progress struct {
	w     io.Writer
	tty   bool
	every time.Duration
	now   func() time.Time
	last  time.Time
	drawn bool
}

// newProgress returns a progress line on standard error.
func (a *app) newProgress() *progress {
	return &progress{w: a.stderr, tty: a.term.errTTY, every: time.Second, now: time.Now}
}

// update shows line as the current state.
func (p *progress) update(line string) {
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s", line)
		p.drawn = true
		return
	}
	if now := p.now(); p.last.IsZero() || now.Sub(p.last) >= p.every {
		fmt.Fprintln(p.w, line)
		p.last = now
	}
}

// done shows line as the final state and ends the progress line.
func (p *progress) done(line string) {
	if p.tty {
		fmt.Fprintf(p.w, "\r\x1b[K%s\n", line)
		p.drawn = false
		return
	}
	fmt.Fprintln(p.w, line)
}

// println prints a line of its own above the progress line (which the next
// update draws again).
func (p *progress) println(line string) {
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.drawn = false
	}
	fmt.Fprintln(p.w, line)
}
