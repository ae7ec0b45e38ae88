// Package testproxy is a TCP proxy for tests of plugins that talk to a
// server: it records what clients send, so that a test can check that no
// secret crosses the wire in clear, and it can stall, so that a test can
// make the server unresponsive to new and to open connections alike. It
// can also sever a connection just after a request left (SeverAfter). It
// is closed with the test.
package testproxy

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Proxy forwards connections to a target address.
type Proxy struct {
	ln     net.Listener
	target string

	mu      sync.Mutex
	stalled chan struct{} // closed on resume; nil when not stalled
	sever   []byte        // SeverAfter's pattern; nil when not armed
	severed bool          // SeverAfter cut a connection: cancel requests are dropped
	cut     []byte        // CutBefore's pattern; nil when not armed
	sent    bytes.Buffer
	conns   map[net.Conn]bool
	wg      sync.WaitGroup
}

// New starts a proxy to target (host:port) on a free local port.
func New(t testing.TB, target string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		if p.stalled != nil {
			close(p.stalled)
			p.stalled = nil
		}
		for c := range p.conns {
			_ = c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

// Addr is the proxy's address (host:port).
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Sent returns what clients sent through the proxy since it started or
// since the last Reset.
func (p *Proxy) Sent() []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	return bytes.Clone(p.sent.Bytes())
}

// Reset forgets what was recorded.
func (p *Proxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent.Reset()
}

// Stall makes the server unresponsive until the returned function is called
// (more than once is fine): new connections are held without an answer, and
// open connections stop forwarding in both directions (what was sent in the
// meantime is forwarded on resume), as a server that hangs looks to a
// client holding pooled connections.
func (p *Proxy) Stall() (resume func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	ch := make(chan struct{})
	p.stalled = ch
	var once sync.Once
	return func() {
		once.Do(func() {
			p.mu.Lock()
			defer p.mu.Unlock()
			if p.stalled == ch {
				close(ch)
				p.stalled = nil
			}
		})
	}
}

// SeverAfter arms the proxy to cut one connection as the network can: the
// next chunk a client sends that contains pattern is forwarded to the
// server, and then the client's side is closed while the server's side
// stays open for a second, its answer discarded. The server completes the
// request; the client gets an error and never learns the outcome (a
// commit whose connection broke). From then on, Postgres cancel requests
// (which pgx sends for the request in flight when its connection breaks)
// are dropped, as a broken network would drop them, so that the server
// does complete the request.
func (p *Proxy) SeverAfter(pattern []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sever = bytes.Clone(pattern)
}

// CutBefore arms the proxy to cut one connection before a request reaches
// the server: the next chunk a client sends that contains pattern is
// dropped, and the connection is closed on both sides. The server never
// sees the request (a commit lost with its connection); the client gets an
// error and does not know that.
func (p *Proxy) CutBefore(pattern []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = bytes.Clone(pattern)
}

// cuts reports whether chunk, sent by a client, is the one CutBefore waits
// for, and disarms it if so.
func (p *Proxy) cuts(chunk []byte) bool { return p.matches(&p.cut, chunk) }

// severs reports whether chunk, sent by a client, is the one SeverAfter
// waits for, and disarms it if so.
func (p *Proxy) severs(chunk []byte) bool { return p.matches(&p.sever, chunk) }

// matches reports whether chunk contains the armed *pattern, and disarms
// it if so; a sever also starts dropping cancel requests.
func (p *Proxy) matches(pattern *[]byte, chunk []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if *pattern == nil || !bytes.Contains(chunk, *pattern) {
		return false
	}
	*pattern = nil
	p.severed = p.severed || pattern == &p.sever
	return true
}

// dropsCancel reports whether chunk, the first a client sent on a
// connection, is a Postgres CancelRequest to drop (after a sever).
func (p *Proxy) dropsCancel(chunk []byte) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.severed && len(chunk) == 16 && bytes.Equal(chunk[:8], []byte{0, 0, 0, 16, 0x04, 0xd2, 0x16, 0x2e})
}

func (p *Proxy) track(c net.Conn, on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(c, true)
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer p.track(c, false)
			defer c.Close()
			p.mu.Lock()
			stall := p.stalled
			p.mu.Unlock()
			if stall != nil {
				<-stall
				return
			}
			up, err := net.Dial("tcp", p.target)
			if err != nil {
				return
			}
			p.track(up, true)
			defer p.track(up, false)
			defer up.Close()
			done := make(chan struct{})
			go func() {
				p.pipe(c, up, nil)
				_ = c.Close()
				close(done)
			}()
			// Recorded before it is forwarded: whatever the server
			// answered is in the record by the time the client has the
			// answer (forwarded first, a test reading the record right
			// after a call could miss the call's last bytes).
			if severed := p.pipe(io.MultiWriter((*recorder)(p), up), c, p.severs); severed {
				_ = c.Close()
				_ = up.SetReadDeadline(time.Now().Add(time.Second))
				_, _ = io.Copy(io.Discard, up)
			}
			_ = up.Close()
			<-done
		}()
	}
}

// pipe copies src to dst, holding each chunk while the proxy is stalled.
// It stops, and reports true, after forwarding a chunk for which stop (if
// not nil) is true, or without forwarding one CutBefore waits for (when
// stop is not nil: the client's side).
func (p *Proxy) pipe(dst io.Writer, src io.Reader, stop func([]byte) bool) bool {
	buf := make([]byte, 32<<10)
	for first := true; ; first = false {
		n, err := src.Read(buf)
		if first && stop != nil && p.dropsCancel(buf[:n]) {
			return false
		}
		if n > 0 {
			p.mu.Lock()
			stall := p.stalled
			p.mu.Unlock()
			if stall != nil {
				<-stall
			}
			if stop != nil && p.cuts(buf[:n]) {
				return true
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return false
			}
			if stop != nil && stop(buf[:n]) {
				return true
			}
		}
		if err != nil {
			return false
		}
	}
}

// recorder appends what it is written to the proxy's record.
type recorder Proxy

func (w *recorder) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sent.Write(b)
}
