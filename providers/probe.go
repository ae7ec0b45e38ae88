package providers

import "context"

// Prober is implemented by providers that can check, without changing
// anything, that they reach the system they mint on and that the
// credentials they use there (an admin connection string, a client secret)
// are accepted, with the privileges rotation needs. `rotator doctor` calls
// it for every configured provider.
//
// Probe must be read-only: it never mints, activates or revokes, and
// leaves no trace beyond what a login does. It is not retried. A non-nil
// error means the provider is broken; wrap it with NewProbeError to say
// what the operator should do. Errors and responses must never contain a
// secret value.
type Prober interface {
	Probe(ctx context.Context, req ProbeRequest) (ProbeResponse, error)
}

// ProbeRequest asks a provider to probe its system. It has no fields yet;
// it is a struct so that fields can be added without breaking anyone.
type ProbeRequest struct{}

// ProbeResponse reports what a probe proved.
type ProbeResponse struct {
	// Checked are short, secret-free sentences naming what the probe
	// proved ("connected to db:5432 as rotator_admin").
	Checked []string
	// Unproven names what a probe cannot prove without changing something
	// (an OAuth client secret is only proven by a token request that mints
	// a token). Empty when the probe covers everything rotation needs.
	Unproven []string
}

// ProbeError is a failed probe with what to do about it.
type ProbeError struct {
	// Err says what failed (secret-free).
	Err error
	// Fix says what the operator should do ("grant CREATEROLE to ...").
	Fix string
}

// NewProbeError returns err with the advice fix.
func NewProbeError(err error, fix string) error { return &ProbeError{Err: err, Fix: fix} }

func (e *ProbeError) Error() string { return e.Err.Error() }

// Unwrap returns the failure.
func (e *ProbeError) Unwrap() error { return e.Err }

// Remedy returns the advice.
func (e *ProbeError) Remedy() string { return e.Fix }
