package secret

import (
	"errors"
	"net/url"
	"strings"
)

// minScrubLen is the shortest value ScrubError removes; shorter strings
// would redact ordinary words.
const minScrubLen = 4

// ScrubError returns err with every occurrence of the given values (as is
// and query-escaped) in its message replaced by [REDACTED], or err itself
// when none occurs. Plugins wrap the errors of their client libraries with
// it, because those errors may quote what was sent or received.
//
// The result answers errors.Is and errors.As for err's chain, so callers can
// still classify it; it does not Unwrap, so generic code that walks the
// chain and prints the inner errors cannot reach the unscrubbed text.
func ScrubError(err error, values ...Value) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	scrubbed := msg
	for _, v := range values {
		s := v.RevealString()
		if len(s) < minScrubLen {
			continue
		}
		scrubbed = strings.ReplaceAll(scrubbed, s, Redacted)
		if q := url.QueryEscape(s); q != s {
			scrubbed = strings.ReplaceAll(scrubbed, q, Redacted)
		}
	}
	if scrubbed == msg {
		return err
	}
	return &scrubbedError{msg: scrubbed, orig: err}
}

type scrubbedError struct {
	msg  string
	orig error
}

func (e *scrubbedError) Error() string        { return e.msg }
func (e *scrubbedError) Is(target error) bool { return errors.Is(e.orig, target) }
func (e *scrubbedError) As(target any) bool   { return errors.As(e.orig, target) }
