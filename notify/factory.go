package notify

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/settings"
)

// Factory builds receivers of one type (notify/registry lists them).
type Factory struct {
	// Validate checks settings as written in the configuration (secrets
	// still references); it never returns a value.
	Validate func(s settings.Map) settings.Errors
	// New builds a receiver from settings whose references are resolved
	// (secrets are secret.Value).
	New func(req NewRequest) (Receiver, error)
}

// NewRequest is what a Factory's New gets.
type NewRequest struct {
	// Name is the receiver's name under notify.receivers.
	Name string
	// Settings are resolved: secret fields hold secret.Value.
	Settings settings.Map
	// HTTPClient sends HTTP requests (default: a client with the
	// receiver's timeout).
	HTTPClient *http.Client
	// Now is the clock (webhook timestamps, Retry-After dates).
	Now    func() time.Time
	Logger *slog.Logger
}

// Clock returns req.Now or time.Now.
func (req NewRequest) Clock() func() time.Time {
	if req.Now != nil {
		return req.Now
	}
	return time.Now
}

// SettingsError joins a receiver's settings problems into one error.
func SettingsError(name string, errs settings.Errors) error {
	parts := make([]string, len(errs))
	for i, e := range errs {
		parts[i] = e.Error()
	}
	return fmt.Errorf("receiver %s: %s", name, strings.Join(parts, "; "))
}
