package exec

import (
	"bufio"
	"errors"
	"io"
	"sync"
)

// maxLine bounds one JSON-RPC line (a message): 64 MiB, as large as any
// MCP result is expected to be; a longer line ends the stream with an
// error instead of growing without bound.
const maxLine = 64 << 20

// errLineTooLong reports a line over maxLine.
var errLineTooLong = errors.New("a JSON-RPC line is longer than 64 MiB")

// readLines calls fn with each newline-terminated line of r (the newline
// kept; a last line without one gets one), until r ends. It returns nil at
// the end of r.
func readLines(r io.Reader, fn func(line []byte)) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var long []byte
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, chunk...)
			if len(long) > maxLine {
				return errLineTooLong
			}
			continue
		}
		line := chunk
		if long != nil {
			line = append(long, chunk...)
			long = nil
		}
		if len(line) > 0 {
			out := make([]byte, len(line), len(line)+1)
			copy(out, line)
			if out[len(out)-1] != '\n' {
				out = append(out, '\n')
			}
			fn(out)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// queue writes lines to w in order from its own goroutine, so that the
// relay never blocks on a peer that is slow to read: Send only appends.
type queue struct {
	mu     sync.Mutex
	cond   *sync.Cond
	lines  [][]byte
	closed bool
	err    error
	done   chan struct{}
}

// newQueue starts writing to w; closeW (may be nil) is called once the
// queue is closed and drained, or when a write fails.
func newQueue(w io.Writer, closeW func() error) *queue {
	q := &queue{done: make(chan struct{})}
	q.cond = sync.NewCond(&q.mu)
	go q.run(w, closeW)
	return q
}

func (q *queue) run(w io.Writer, closeW func() error) {
	defer close(q.done)
	for {
		q.mu.Lock()
		for len(q.lines) == 0 && !q.closed {
			q.cond.Wait()
		}
		lines := q.lines
		q.lines = nil
		closed := q.closed
		q.mu.Unlock()
		for _, l := range lines {
			if _, err := w.Write(l); err != nil {
				q.mu.Lock()
				q.err, q.closed, q.lines = err, true, nil
				q.mu.Unlock()
				if closeW != nil {
					_ = closeW()
				}
				return
			}
		}
		if closed && len(lines) == 0 {
			if closeW != nil {
				_ = closeW()
			}
			return
		}
	}
}

// Send queues a line; after Close or a failed write it is dropped.
func (q *queue) Send(line []byte) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.closed {
		return
	}
	q.lines = append(q.lines, line)
	q.cond.Signal()
}

// Close writes what is queued, then closes the writer. It does not wait.
func (q *queue) Close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.cond.Signal()
}

// Done is closed when the queue has written or dropped everything.
func (q *queue) Done() <-chan struct{} { return q.done }
