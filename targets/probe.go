package targets

import "context"

// Prober is implemented by targets that can check, without publishing
// anything, that the place they publish to exists and may be written (a
// directory, a Secrets Manager secret), with the credentials configured.
// `rotator doctor` calls it for every configured target.
//
// Probe must be read-only and is not retried. A non-nil error means the
// target is broken; wrap it with NewProbeError to say what the operator
// should do. Errors and responses must never contain a secret value.
type Prober interface {
	Probe(ctx context.Context, req ProbeRequest) (ProbeResponse, error)
}

// ProbeRequest asks a target to probe where it publishes. It has no
// fields yet; it is a struct so that fields can be added without breaking
// anyone.
type ProbeRequest struct{}

// ProbeResponse reports what a probe proved.
type ProbeResponse struct {
	// Checked are short, secret-free sentences naming what was proven.
	Checked []string
	// Unproven names what the probe cannot prove without writing.
	Unproven []string
}

// ProbeError is a failed probe with what to do about it.
type ProbeError struct {
	// Err says what failed (secret-free).
	Err error
	// Fix says what the operator should do.
	Fix string
}

// NewProbeError returns err with the advice fix.
func NewProbeError(err error, fix string) error { return &ProbeError{Err: err, Fix: fix} }

func (e *ProbeError) Error() string { return e.Err.Error() }

// Unwrap returns the failure.
func (e *ProbeError) Unwrap() error { return e.Err }

// Remedy returns the advice.
func (e *ProbeError) Remedy() string { return e.Fix }
