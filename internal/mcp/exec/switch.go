package exec

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/rotatorhq/rotator/internal/delivery"
)

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
		p.release()
	}
	p.r.say("credential %q rotated to version %s (fingerprint %s); starting a new server with it, to take over once no request is in flight (by %s at the latest)",
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
	// The new server starts at once: the old one serves meanwhile (the
	// previous value is valid through the grace period), so its start is
	// not a pause for the client.
	if p.next == nil && p.retryAt.IsZero() {
		p.startNext()
	}
	if p.next != nil && !p.readyAt.IsZero() && (p.busy(p.r.cur) == 0 || p.late) {
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
	p.next, p.readyAt, p.initAnswered, p.holdAll = c, time.Time{}, false, false
	p.awaiting, p.early, p.ackSwallow = map[string]bool{}, nil, map[string]bool{}
	p.startBy = p.decided.Add(p.r.opts.StartTimeout)
	if p.initReq != nil {
		p.awaiting[p.initID] = true
		c.in.Send(p.initReq)
		return
	}
	p.replayRest()
}

// holding says whether the client's new requests are held: from when the
// new server is ready (the old one then only finishes what it has) or a
// message would change the session the new one was given, until the
// switch; not while a failed start waits to be tried again.
func (p *relay) holding() bool {
	return p.pending && p.retryAt.IsZero() && p.next != nil && (!p.readyAt.IsZero() || p.holdAll)
}

// retryLater gives up this attempt to restart: the held lines go to the
// running server, and the restart is tried again after a backoff.
func (p *relay) retryLater() {
	p.retryAt = time.Now().Add(p.backoff)
	p.backoff = min(2*p.backoff, 30*time.Second)
	p.release()
}

// release passes the held lines on to the running server, in order, when
// the new one they were held for is gone (p.next is nil).
func (p *relay) release() {
	p.holdAll = false
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
	p.r.cur, p.next, p.pending, p.holdAll = c, nil, false, false
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
		p.r.say("credential %q: the server now runs with version %s (fingerprint %s); the new server started in %s, the switch held %d client message(s)",
			id, co.to, co.fingerprint, sw.Ready.Sub(sw.Decided).Round(time.Millisecond), sw.Held)
	}
	if p.r.opts.OnSwitch != nil {
		p.r.opts.OnSwitch(sw)
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
