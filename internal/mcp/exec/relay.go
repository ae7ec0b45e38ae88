package exec

import (
	"fmt"
	"os"
	"slices"
	"time"
)

// relay is restart mode: it passes the MCP stdio transport between the
// client (exec's stdin and stdout) and the current child, tracking what a
// restart must wait for (requests in flight both ways) and what it must
// replay (the session's initialize handshake and subscriptions).
//
// All its methods run on the runner's loop goroutine.
type relay struct {
	r   *runner
	out *queue // to the client
	t   *time.Timer

	// inflight maps the id of each client request not yet answered to the
	// child handling it; serverReqs the id of each server request to the
	// client not yet answered to the child that sent it.
	inflight   map[string]*child
	serverReqs map[string]*child

	// The session's state, replayed to a new child.
	initReq, initialized []byte
	initID               string
	setLevel             []byte
	subs                 map[string][]byte // resources/subscribe lines by uri
	listens              map[string][]byte // subscriptions/listen lines by id
	listenOrder          []string

	// A pending restart.
	pending  bool
	detected time.Time
	deadline time.Time          // switch by then, busy or not
	late     bool               // the deadline has passed
	cutovers map[string]cutover // by credential
	held     [][]byte           // client lines held until the switch

	// The new child while it starts.
	next         *child
	decided      time.Time
	readyAt      time.Time
	startBy      time.Time
	awaiting     map[string]bool // replayed requests whose answers are swallowed
	holdAll      bool            // a message changed the session after the replay
	initAnswered bool
	early        [][]byte // what the new child said before the switch
	ackSwallow   map[string]bool
	retryAt      time.Time
	backoff      time.Duration

	// Children switched away from while requests were in flight, with the
	// time by which they must have answered them.
	retiring map[*child]time.Time

	clientGone bool
	stopAt     time.Time // after the client's EOF: stop the child then
}

// cutover is one credential's pending change.
type cutover struct {
	from, to, fingerprint string
	graceEnd              time.Time
}

func newRelay(r *runner) *relay {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &relay{
		r: r, out: newQueue(r.opts.Stdout, nil), t: t,
		inflight: map[string]*child{}, serverReqs: map[string]*child{},
		subs: map[string][]byte{}, listens: map[string][]byte{}, cutovers: map[string]cutover{},
		ackSwallow: map[string]bool{}, retiring: map[*child]time.Time{}, backoff: time.Second,
	}
}

// close flushes what is queued for the client (bounded: a client that
// stopped reading does not hold exec).
func (p *relay) close() {
	p.out.Close()
	select {
	case <-p.out.Done():
	case <-time.After(p.r.opts.StopTimeout):
	}
}

// timer returns a channel that fires at the earliest time something is
// due, or nil.
func (p *relay) timer() <-chan time.Time {
	var due time.Time
	at := func(t time.Time) {
		if !t.IsZero() && (due.IsZero() || t.Before(due)) {
			due = t
		}
	}
	if p.pending && !p.late {
		at(p.deadline)
	}
	if p.next != nil && p.readyAt.IsZero() {
		at(p.startBy)
	}
	at(p.retryAt)
	at(p.stopAt)
	for _, t := range p.retiring {
		at(t)
	}
	if due.IsZero() {
		return nil
	}
	p.t.Reset(time.Until(due))
	return p.t.C
}

// onTimer does what is due.
func (p *relay) onTimer() {
	now := time.Now()
	if p.pending && !p.late && !p.deadline.IsZero() && !now.Before(p.deadline) {
		// From now on the restart does not wait for the server to go idle.
		p.late = true
		if p.busy(p.r.cur) > 0 {
			p.tooLate()
		}
	}
	if p.next != nil && p.readyAt.IsZero() && !now.Before(p.startBy) {
		p.r.say("the new server did not answer the replayed initialize within %s; the running server keeps the previous value; trying again in %s",
			p.r.opts.StartTimeout, p.backoff)
		p.abandonNext()
	}
	if !p.retryAt.IsZero() && !now.Before(p.retryAt) {
		p.retryAt = time.Time{}
	}
	for c, t := range p.retiring {
		if !now.Before(t) {
			p.r.say("the previous server (pid %d) did not answer %d request(s) within %s of the switch; stopping it",
				c.cmd.Process.Pid, p.busy(c), p.r.opts.DrainTimeout)
			p.retire(c, "the server was restarted for a credential rotation before it answered this request")
		}
	}
	if !p.stopAt.IsZero() && !now.Before(p.stopAt) {
		p.stopAt = time.Time{}
		p.r.cur.stop(p.r.opts.StopTimeout)
	}
	p.advance()
}

// busy counts the requests in flight on c, both ways.
func (p *relay) busy(c *child) int {
	n := 0
	for _, o := range p.inflight {
		if o == c {
			n++
		}
	}
	for _, o := range p.serverReqs {
		if o == c {
			n++
		}
	}
	return n
}

// fromClient routes one line from the MCP client.
func (p *relay) fromClient(line []byte) {
	msgs := parseLine(line)
	cur := p.r.cur
	if len(msgs) == 1 {
		m := msgs[0]
		switch {
		case m.kind == kindResponse:
			to := cur
			if o, ok := p.serverReqs[m.id]; ok {
				to = o
				delete(p.serverReqs, m.id)
			}
			to.in.Send(line)
			p.settled(to)
			return
		case m.kind == kindNotification && m.method == methodCancelled:
			if _, ok := p.inflight[m.ref]; !ok && p.dropHeld(m.ref) {
				return // cancelled before any server saw it
			}
			to := cur
			if o, ok := p.inflight[m.ref]; ok {
				to = o
				delete(p.inflight, m.ref)
			}
			if _, ok := p.listens[m.ref]; ok {
				p.dropListen(m.ref)
				if p.next != nil {
					// It was replayed to the new server too.
					p.next.in.Send(line)
				}
			}
			to.in.Send(line)
			p.settled(to)
			return
		}
	}
	if p.next != nil && !p.holdAll && changesSession(msgs) {
		// The new server was given the session as it was: from here on
		// the client's messages wait for it.
		p.holdAll = true
	}
	if p.holding() {
		p.held = append(p.held, line)
		return
	}
	for _, m := range msgs {
		p.trackClient(m, line, len(msgs) == 1)
	}
	cur.in.Send(line)
}

// dropHeld removes the held request with the given id, if any.
func (p *relay) dropHeld(id string) bool {
	for i, l := range p.held {
		if m := parseLine(l); len(m) == 1 && m[0].kind == kindRequest && m[0].id == id {
			p.held = append(p.held[:i], p.held[i+1:]...)
			return true
		}
	}
	return false
}

// changesSession reports whether msgs change what a new server is
// replayed (the handshake, the log level, subscriptions).
func changesSession(msgs []message) bool {
	for _, m := range msgs {
		switch m.method {
		case methodInitialize, methodInitialized, methodSetLevel, methodSubscribe, methodUnsubscribe, methodSubscriptionsListen:
			return true
		}
		if m.kind == kindOther {
			return true
		}
	}
	return false
}

// trackClient notes a client message forwarded to the current child.
func (p *relay) trackClient(m message, line []byte, whole bool) {
	switch m.kind {
	case kindRequest:
		switch m.method {
		case methodSubscriptionsListen:
			if whole {
				p.listens[m.id] = line
				p.listenOrder = append(p.listenOrder, m.id)
			}
			return // long-lived: never counted as in flight
		case methodInitialize:
			if whole {
				p.initReq, p.initID = line, m.id
			}
		case methodSetLevel:
			if whole {
				p.setLevel = line
			}
		case methodSubscribe:
			if whole {
				p.subs[m.ref] = line
			}
		case methodUnsubscribe:
			delete(p.subs, m.ref)
		}
		p.inflight[m.id] = p.r.cur
	case kindNotification:
		if m.method == methodInitialized && whole {
			p.initialized = line
		}
	case kindResponse:
		delete(p.serverReqs, m.id)
	}
}

func (p *relay) dropListen(id string) {
	delete(p.listens, id)
	p.listenOrder = slices.DeleteFunc(p.listenOrder, func(s string) bool { return s == id })
}

// settled is called when a request of c's may have ended.
func (p *relay) settled(c *child) {
	if _, ok := p.retiring[c]; ok && p.busy(c) == 0 {
		delete(p.retiring, c)
		c.stop(p.r.opts.StopTimeout)
		return
	}
	if c == p.r.cur {
		p.advance()
	}
}

// fromChild routes one line from a child.
func (p *relay) fromChild(c *child, line []byte) {
	switch {
	case c == p.next:
		p.fromNext(line)
	case c == p.r.cur:
		p.fromCurrent(c, line)
	default:
		if _, ok := p.retiring[c]; ok {
			p.fromRetiring(c, line)
		}
		// Anything else comes from a child being stopped: dropped.
	}
}

// fromCurrent passes a line of the current child to the client.
func (p *relay) fromCurrent(c *child, line []byte) {
	msgs := parseLine(line)
	if len(msgs) == 1 {
		m := msgs[0]
		if m.kind == kindNotification && m.method == methodSubscriptionsAck && p.ackSwallow[m.ref] {
			delete(p.ackSwallow, m.ref)
			return
		}
	}
	for _, m := range msgs {
		switch m.kind {
		case kindResponse:
			delete(p.inflight, m.id)
			if _, ok := p.listens[m.id]; ok {
				p.dropListen(m.id)
			}
		case kindRequest:
			p.serverReqs[m.id] = c
		case kindNotification:
			if m.method == methodCancelled {
				delete(p.serverReqs, m.ref)
			}
		}
	}
	p.out.Send(line)
	p.advance()
}

// fromRetiring passes on what a switched-away child says about its own
// requests: answers to them, its requests to the client, notifications
// (progress); an answer to anything else (a listen stream it closes) is
// dropped.
func (p *relay) fromRetiring(c *child, line []byte) {
	msgs := parseLine(line)
	if len(msgs) != 1 {
		return
	}
	m := msgs[0]
	switch m.kind {
	case kindResponse:
		if p.inflight[m.id] != c {
			return
		}
		delete(p.inflight, m.id)
	case kindRequest:
		p.serverReqs[m.id] = c
	case kindNotification:
		if m.method == methodSubscriptionsAck {
			return
		}
		if m.method == methodCancelled {
			delete(p.serverReqs, m.ref)
		}
	case kindOther:
		return
	}
	p.out.Send(line)
	p.settled(c)
}

// retire stops c, answering the client's requests it still had with an
// error so that the client does not wait for ever.
func (p *relay) retire(c *child, why string) {
	delete(p.retiring, c)
	for id, o := range p.inflight {
		if o == c {
			p.out.Send(append(errorResponse(id, "rotator exec: "+why), '\n'))
			delete(p.inflight, id)
		}
	}
	for id, o := range p.serverReqs {
		if o == c {
			delete(p.serverReqs, id)
		}
	}
	c.stop(p.r.opts.StopTimeout)
}

// otherExited handles the end of a child that is not the current one.
func (p *relay) otherExited(c *child) {
	if c == p.next {
		if !p.r.ending && !p.clientGone {
			p.r.say("the new server %s before it was ready; the running server keeps the previous value; trying again in %s", c.describe(), p.backoff)
		}
		p.next = nil
		p.retryLater()
		return
	}
	if _, ok := p.retiring[c]; ok {
		p.retire(c, fmt.Sprintf("the previous server %s before it answered this request", c.describe()))
	}
}

// clientEOF: the client closed exec's stdin, which ends the session: the
// child's stdin is closed too, and the child stopped if it lingers.
func (p *relay) clientEOF() {
	p.clientGone = true
	p.pending = false
	if p.next != nil {
		p.next.stop(p.r.opts.StopTimeout)
		p.next = nil
	}
	for _, l := range p.held {
		p.r.cur.in.Send(l)
	}
	p.held = nil
	p.r.cur.in.Close()
	p.stopAt = time.Now().Add(p.r.opts.StopTimeout)
}

// signalOthers passes sig to the children other than the current one.
func (p *relay) signalOthers(sig os.Signal) {
	if p.next != nil {
		p.next.signal(sig)
	}
	for c := range p.retiring {
		c.signal(sig)
	}
}

// stopOthers stops the children other than the current one.
func (p *relay) stopOthers() {
	if p.next != nil {
		p.next.stop(p.r.opts.StopTimeout)
		p.next = nil
	}
	for c := range p.retiring {
		p.retire(c, "rotator exec is ending")
	}
}
