package main

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/rotation"
)

// --wait values.
const (
	waitCutover = "cutover"
	waitRetired = "retired"
)

// errNotRotated reports that a credential asked for was not rotated (it
// was skipped, or its run did not get as far as asked) under --wait.
var errNotRotated = errors.New("not every credential asked for was rotated")

// startedView is one credential of a rotation request in the output.
type startedView struct {
	Credential string `json:"credential"`
	Run        string `json:"run"`
	State      string `json:"state"`
	Skipped    bool   `json:"skipped,omitempty"`
	Note       string `json:"note,omitempty"`
	Error      string `json:"error,omitempty"`
	// Attempts lists every run executed for the credential (retries).
	Attempts []string `json:"attempts,omitempty"`
	// RetireAfter is when the previous version is retired, for a run
	// left at cut_over.
	RetireAfter *time.Time `json:"retire_after,omitempty"`
	// NextAttempt is when a failed credential is tried again.
	NextAttempt *time.Time `json:"next_attempt,omitempty"`
	// Preempted is the routine run an emergency cancelled.
	Preempted string `json:"preempted,omitempty"`
	// ExecutedBy says who executed the runs: "here" or the service.
	ExecutedBy string `json:"executed_by,omitempty"`
}

func skippedView(s rotation.Started) startedView {
	return startedView{Credential: s.CredentialID, Run: s.RunID, State: string(s.ActiveState), Skipped: true, Note: s.Reason}
}

func (a *app) printStarted(started []rotation.Started, output string) error {
	views := make([]startedView, 0, len(started))
	skipped := 0
	for _, s := range started {
		v := startedView{Credential: s.CredentialID, Run: s.RunID, State: string(rotation.StatePlanned), Preempted: s.Preempted}
		if s.Skipped {
			v = skippedView(s)
			skipped++
		}
		views = append(views, v)
	}
	if isData(output) {
		if err := writeData(a.stdout, output, map[string]any{"runs": views}); err != nil {
			return err
		}
	} else {
		t := newTable(a.stdout, "CREDENTIAL", "RUN", "STATUS")
		for _, v := range views {
			status := "queued"
			if v.Skipped {
				status = "skipped: " + v.Note
			}
			t.row(v.Credential, orDash(v.Run), status)
		}
		if err := t.flush(); err != nil {
			return err
		}
		fmt.Fprintln(a.stdout, "Queued for the running 'rotator serve'. Follow with 'rotator runs wait RUN...' or use --wait.")
	}
	if skipped > 0 {
		return fmt.Errorf("%w: %d of %d skipped", errNotRotated, skipped, len(started))
	}
	return nil
}

// printResults prints where each credential's runs ended and returns
// errRunsFailed or errNotRotated when one was not rotated as asked.
func (a *app) printResults(started []rotation.Started, results []rotation.Result, f rotateFlags, executedBy string) error {
	byRun := make(map[string]rotation.Result, len(results))
	for _, r := range results {
		if len(r.Attempts) > 0 {
			byRun[r.Attempts[0]] = r
		}
	}
	views := make([]startedView, 0, len(started))
	failed, notRotated, interrupted := 0, 0, 0
	for _, s := range started {
		res, ok := byRun[s.RunID]
		if s.InGrace() || !ok {
			views = append(views, skippedView(s))
			notRotated++
			continue
		}
		v := startedView{Credential: s.CredentialID, Run: res.Run.ID, State: res.Run.State, Error: res.Run.Error,
			Preempted: s.Preempted, ExecutedBy: executedBy}
		if v.Run == "" {
			v.Run = s.RunID
		}
		if len(res.Attempts) > 1 {
			v.Attempts = res.Attempts
		}
		if s.Skipped {
			v.Note = "joined run " + s.RunID + " already in progress"
		}
		if !res.NextAttempt.IsZero() {
			t := res.NextAttempt.UTC()
			v.NextAttempt = &t
		}
		state := rotation.State(res.Run.State)
		switch {
		case state == rotation.StateSucceeded:
		case state == rotation.StateCutOver || state == rotation.StateRetiringPrevious:
			if t := rotation.OptionsOf(res.Run).RetireAfter; !t.IsZero() {
				u := t.UTC()
				v.RetireAfter = &u
				v.Note = retireNote(u, executedBy)
			}
			if f.wait == waitRetired {
				notRotated++
			}
		case state.Terminal():
			failed++
		default:
			interrupted++
			if v.Error == "" && res.Err != nil {
				v.Error = a.redactor.Scrub(res.Err.Error())
			}
		}
		views = append(views, v)
	}
	if isData(f.output) {
		if err := writeData(a.stdout, f.output, map[string]any{"runs": views}); err != nil {
			return err
		}
	} else {
		t := newTable(a.stdout, "CREDENTIAL", "RUN", "STATE", "DETAIL")
		for _, v := range views {
			detail := v.Error
			if detail == "" {
				detail = v.Note
			}
			if v.NextAttempt != nil {
				detail += fmt.Sprintf(" (next attempt %s)", v.NextAttempt.Format(time.RFC3339))
			}
			state := v.State
			if v.Skipped {
				state = "skipped"
			}
			t.row(v.Credential, orDash(v.Run), orDash(state), orDash(strings.TrimSpace(detail)))
		}
		if err := t.flush(); err != nil {
			return err
		}
	}
	if interrupted > 0 {
		where := "they resume when 'rotator serve' runs, or with 'rotator runs resume'"
		if executedBy != "here" {
			where = "the service goes on with them; follow with 'rotator runs wait'"
		}
		fmt.Fprintf(a.stderr, "stopped waiting: %d run(s) not finished, each stopped at a committed step; %s\n", interrupted, where)
	}
	switch {
	case failed > 0:
		return fmt.Errorf("%w: %d of %d", errRunsFailed, failed, len(started))
	case notRotated > 0 || interrupted > 0:
		return fmt.Errorf("%w: %d of %d", errNotRotated, notRotated+interrupted, len(started))
	}
	return nil
}

func retireNote(at time.Time, executedBy string) string {
	if executedBy == "here" {
		return fmt.Sprintf("cut over; the previous version stays valid until %s, then is retired by 'rotator serve' or 'rotator runs resume' (or wait with --wait=retired)", at.Format(time.RFC3339))
	}
	return fmt.Sprintf("cut over; the previous version stays valid until %s, then the service retires it", at.Format(time.RFC3339))
}

// progressPrinter reports a rotation's progress on stderr: a line per
// failed attempt, retry and countdown to a retirement, and a running count
// of the total credentials done (at most once a second, and at the end).
func (a *app) progressPrinter(f rotateFlags, total int) func(rotation.Progress) {
	if f.quiet {
		return func(rotation.Progress) {}
	}
	begin := time.Now()
	pr := a.newProgress()
	done, failed, stopped := 0, 0, 0
	return func(p rotation.Progress) {
		switch p.Kind {
		case rotation.ProgressAttemptFailed:
			pr.println(fmt.Sprintf("%s: attempt %d failed (%s); next attempt at %s (in %s)", p.Credential, p.Attempt,
				a.redactor.Scrub(p.Error), p.At.UTC().Format(time.TimeOnly), time.Until(p.At).Round(time.Second)))
		case rotation.ProgressRetrying:
			pr.println(fmt.Sprintf("%s: attempt %d started (run %s)", p.Credential, p.Attempt, p.Run))
		case rotation.ProgressWaitingRetire:
			if f.wait == waitRetired {
				pr.println(fmt.Sprintf("%s: cut over (run %s); retiring the previous version at %s (in %s)", p.Credential, p.Run,
					p.At.UTC().Format(time.TimeOnly), time.Until(p.At).Round(time.Second)))
			}
		case rotation.ProgressTransient:
			pr.println(fmt.Sprintf("run %s: %s; trying again at %s", p.Run, a.redactor.Scrub(p.Error), p.At.UTC().Format(time.TimeOnly)))
		case rotation.ProgressFinished:
			switch s := rotation.State(p.State); {
			case s == rotation.StateSucceeded, s == rotation.StateCutOver:
				done++
			case s.Terminal():
				done++
				failed++
			default:
				stopped++
			}
			line := fmt.Sprintf("rotating: %d/%d done, %d failed", done, total, failed)
			if stopped > 0 {
				line += fmt.Sprintf(", %d stopped", stopped)
			}
			line += fmt.Sprintf(" (%s)", time.Since(begin).Round(100*time.Millisecond))
			if done+stopped == total {
				pr.done(line)
			} else {
				pr.update(line)
			}
		}
	}
}
