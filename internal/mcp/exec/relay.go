package exec

import (
	"context"
	"fmt"
	"maps"
	"os"
	"slices"
	"time"

	"github.com/rotatorhq/rotator/internal/delivery"
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
	deadline time.Time // switch by then, busy or not
	late     bool      // the deadline has passed
	cutovers map[string]cutover // by credential
	held     [][]byte           // client lines held until the switch

	// The new child while it starts.
	next         *child
	decided      time.Time
	readyAt      time.Time
	startBy      time.Time
	awaiting     map[string]bool // replayed requests whose answers are swallowed
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

// rotated starts (or extends) a pending restart for a cutover.
func (p *relay) rotated(ev event, old delivery.Current) {
	id := ev.cur.CredentialID
	if !p.pending {
		p.pending, p.detected, p.deadline, p.late = true, ev.detected, time.Time{}, false
		p.cutovers = map[string]cutover{}
	}
	co, seen := p.cutovers[id]
	if !seen {
		co.from = old.VersionID
	}
	co.to, co.fingerprint, co.graceEnd = ev.cur.VersionID, ev.cur.Fingerprint, ev.graceEnd
	p.cutovers[id] = co
	by := p.switchBy(ev.graceEnd, ev.detected)
	if p.deadline.IsZero() || by.Before(p.deadline) {
		p.deadline = by
	}
	if p.next != nil {
		// It was started with the version before this one.
		p.next.stop(p.r.opts.StopTimeout)
		p.next = nil
	}
	p.r.say("credential %q rotated to version %s (fingerprint %s); restarting the server with it once no request is in flight (by %s at the latest)",
		id, co.to, co.fingerprint, p.deadline.UTC().Format(time.RFC3339))
	p.advance()
}

// switchBy is when a restart must happen for a cutover seen at detected
// whose previous version stops being valid at graceEnd: a margin before
// it, to start the new child; DrainTimeout after detected when unknown.
func (p *relay) switchBy(graceEnd, detected time.Time) time.Time {
	if graceEnd.IsZero() {
		return detected.Add(p.r.opts.DrainTimeout)
	}
	margin := min(graceEnd.Sub(detected)/10, 5*time.Second)
	if by := graceEnd.Add(-margin); by.After(detected) {
		return by
	}
	return detected
}

// tooLate reports that the grace period is running out with the server
// still busy: on stderr and in the audit log. The restart then goes ahead;
// the old server finishes its requests beside the new one.
func (p *relay) tooLate() {
	c := p.r.cur
	n := p.busy(c)
	for _, id := range slices.Sorted(maps.Keys(p.cutovers)) {
		co := p.cutovers[id]
		p.r.say("credential %q: the server still had %d request(s) in flight when the previous version's grace period was about to end (%s); "+
			"switching now: new requests go to a new server, the old one may finish those within %s",
			id, n, co.graceEnd.UTC().Format(time.RFC3339), p.r.opts.DrainTimeout)
		if p.r.opts.Recorder == nil {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := p.r.opts.Recorder.RecordEvent(ctx, delivery.Event{Action: delivery.ActionExecLate, CredentialID: id, Data: lateEvent{
			Version: co.to, PreviousVersion: co.from, GraceEndsAt: co.graceEnd, InFlight: n,
			Command: p.r.opts.Command[0], PID: c.cmd.Process.Pid,
		}})
		cancel()
		if err != nil {
			p.r.say("%v", err)
		}
	}
}

// lateEvent is the data of an exec.late_cutover audit event.
type lateEvent struct {
	Version         string    `json:"version"`
	PreviousVersion string    `json:"previous_version"`
	GraceEndsAt     time.Time `json:"grace_ends_at,omitzero"`
	InFlight        int       `json:"in_flight"`
	Command         string    `json:"command"`
	PID             int       `json:"pid"`
}

// advance moves a pending restart on as far as it can go now.
func (p *relay) advance() {
	if !p.pending || p.clientGone || p.r.ending {
		return
	}
	idle := p.busy(p.r.cur) == 0
	if p.next == nil && p.retryAt.IsZero() && (idle || p.late) {
		p.startNext()
	}
	if p.next != nil && !p.readyAt.IsZero() && (idle || p.late) {
		p.switchNow()
	}
}

// startNext starts the new child and replays the session to it.
func (p *relay) startNext() {
	p.decided = time.Now()
	c, err := p.r.start()
	if err != nil {
		p.r.say("could not start the new server: %v; the running server keeps the previous value; trying again in %s", err, p.backoff)
		p.retryLater()
		return
	}
	p.next, p.readyAt, p.initAnswered = c, time.Time{}, false
	p.awaiting, p.early, p.ackSwallow = map[string]bool{}, nil, map[string]bool{}
	p.startBy = p.decided.Add(p.r.opts.StartTimeout)
	if p.initReq != nil {
		p.awaiting[p.initID] = true
		c.in.Send(p.initReq)
		return
	}
	p.replayRest()
}

// holding says whether the client's new requests are held: while a
// restart is under way, not while it waits to try again.
func (p *relay) holding() bool { return p.pending && p.retryAt.IsZero() }

// retryLater gives up this attempt to restart: the held lines go to the
// running server, and the restart is tried again after a backoff.
func (p *relay) retryLater() {
	p.retryAt = time.Now().Add(p.backoff)
	p.backoff = min(2*p.backoff, 30*time.Second)
	held := p.held
	p.held = nil
	for _, l := range held {
		p.fromClient(l)
	}
}

// abandonNext stops a new child that did not become ready.
func (p *relay) abandonNext() {
	p.next.stop(p.r.opts.StopTimeout)
	p.next = nil
	p.retryLater()
}

// replayRest sends the new child what followed initialize: the
// initialized notification, the log level and the subscriptions.
func (p *relay) replayRest() {
	p.initAnswered = true
	c := p.next
	if p.initialized != nil {
		c.in.Send(p.initialized)
	}
	replay := func(line []byte) {
		if m := parseLine(line); len(m) == 1 && m[0].id != "" {
			p.awaiting[m[0].id] = true
		}
		c.in.Send(line)
	}
	if p.setLevel != nil {
		replay(p.setLevel)
	}
	for _, uri := range slices.Sorted(maps.Keys(p.subs)) {
		replay(p.subs[uri])
	}
	for _, id := range p.listenOrder {
		// A listen stream is answered only when it ends; its first message
		// is an acknowledgement the client has had already.
		p.ackSwallow[id] = true
		c.in.Send(p.listens[id])
	}
	if len(p.awaiting) == 0 {
		p.readyAt = time.Now()
	}
}

// switchNow moves the client to the new child.
func (p *relay) switchNow() {
	old, c := p.r.cur, p.next
	p.r.cur, p.next, p.pending = c, nil, false
	sw := Switch{Detected: p.detected, Decided: p.decided, Ready: p.readyAt, Forced: p.late, Held: len(p.held)}
	for _, id := range slices.Sorted(maps.Keys(p.cutovers)) {
		sw.Credentials = append(sw.Credentials, id)
	}
	early, held := p.early, p.held
	p.early, p.held = nil, nil
	p.backoff, p.retryAt = time.Second, time.Time{}
	for _, l := range early {
		p.fromCurrent(c, l)
	}
	for _, l := range held {
		p.fromClient(l)
	}
	sw.Switched = time.Now()
	if n := p.busy(old); n == 0 {
		old.stop(p.r.opts.StopTimeout)
	} else {
		p.retiring[old] = sw.Switched.Add(p.r.opts.DrainTimeout)
	}
	for _, id := range sw.Credentials {
		co := p.cutovers[id]
		p.r.say("credential %q: the server now runs with version %s (fingerprint %s); restart took %s, %d client message(s) held meanwhile",
			id, co.to, co.fingerprint, sw.Switched.Sub(sw.Decided).Round(time.Millisecond), sw.Held)
	}
	if p.r.opts.OnSwitch != nil {
		p.r.opts.OnSwitch(sw)
	}
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
			to := cur
			if o, ok := p.inflight[m.ref]; ok {
				to = o
				delete(p.inflight, m.ref)
			}
			if _, ok := p.listens[m.ref]; ok {
				p.dropListen(m.ref)
			}
			to.in.Send(line)
			p.settled(to)
			return
		}
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

// fromNext handles what the starting child says: the answers to the
// replay are swallowed; the rest waits for the switch.
func (p *relay) fromNext(line []byte) {
	msgs := parseLine(line)
	if len(msgs) == 1 {
		m := msgs[0]
		if m.kind == kindResponse && p.awaiting[m.id] {
			delete(p.awaiting, m.id)
			if m.id == p.initID && !p.initAnswered {
				p.replayRest()
			}
			if len(p.awaiting) == 0 && p.initAnswered && p.readyAt.IsZero() {
				p.readyAt = time.Now()
			}
			if !p.readyAt.IsZero() {
				p.advance()
			}
			return
		}
		if m.kind == kindNotification && m.method == methodSubscriptionsAck && p.ackSwallow[m.ref] {
			delete(p.ackSwallow, m.ref)
			return
		}
	}
	p.early = append(p.early, line)
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

