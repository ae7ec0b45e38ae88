package rotation

import "fmt"

// State is the state of a run (DESIGN.md §5; drawn in docs/state_machine.md).
type State string

// Run states.
const (
	StatePlanned          State = "planned"
	StateRevokingCurrent  State = "revoking_current" // --revoke-first only
	StateMinting          State = "minting"
	StateMinted           State = "minted"
	StateActivating       State = "activating"
	StateActivated        State = "activated"
	StateVerifying        State = "verifying"
	StateVerified         State = "verified"
	StateCuttingOver      State = "cutting_over"
	StateCutOver          State = "cut_over"
	StateRetiringPrevious State = "retiring_previous"
	StateSucceeded        State = "succeeded"
	StateRollingBack      State = "rolling_back"
	StateRolledBack       State = "rolled_back"
	StateFailed           State = "failed"
)

// States lists every state in the order a successful run passes them.
var States = []State{
	StatePlanned, StateRevokingCurrent, StateMinting, StateMinted, StateActivating, StateActivated,
	StateVerifying, StateVerified, StateCuttingOver, StateCutOver, StateRetiringPrevious,
	StateSucceeded, StateRollingBack, StateRolledBack, StateFailed,
}

// Terminal reports whether a run in state s is finished.
func (s State) Terminal() bool {
	switch s {
	case StateSucceeded, StateRolledBack, StateFailed:
		return true
	case StatePlanned, StateRevokingCurrent, StateMinting, StateMinted, StateActivating, StateActivated,
		StateVerifying, StateVerified, StateCuttingOver, StateCutOver, StateRetiringPrevious, StateRollingBack:
		return false
	}
	return false
}

// BeforeCutover reports whether a failure in state s leaves the current
// version untouched (so rollback only discards the pending version).
func (s State) BeforeCutover() bool {
	switch s {
	case StatePlanned, StateRevokingCurrent, StateMinting, StateMinted, StateActivating, StateActivated,
		StateVerifying, StateVerified:
		return true
	case StateCuttingOver, StateCutOver, StateRetiringPrevious, StateSucceeded, StateRollingBack,
		StateRolledBack, StateFailed:
		return false
	}
	return false
}

// ParseState validates a state name (for --state flags).
func ParseState(s string) (State, error) {
	for _, st := range States {
		if string(st) == s {
			return st, nil
		}
	}
	return "", fmt.Errorf("unknown run state %q; valid states: %v", s, States)
}

// StepState is the outcome of a step, as stored in store.Step.State.
type StepState string

// Step outcomes. A step is ok only when it did what its name says; a step
// whose effect did not happen, and did not need to for the run to go on, is
// skipped, with evidence saying why (a revoke step of a provider that cannot
// revoke: the value stays valid until it expires; a stage step of a target
// that has no pending slot).
const (
	StepOK      StepState = "ok"
	StepFailed  StepState = "failed"
	StepSkipped StepState = "skipped"
)

// StepStates lists every step outcome.
var StepStates = []StepState{StepOK, StepFailed, StepSkipped}
