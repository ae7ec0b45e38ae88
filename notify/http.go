package notify

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/rotatorhq/rotator/internal/netx"
)

// ErrStatus is wrapped by the error of a response outside 2xx.
var ErrStatus = errors.New("unexpected HTTP status")

// CheckResponse classifies an HTTP response (after Alertmanager's
// notify.RetrierFunc): 2xx is delivered; 429 and 5xx are worth retrying,
// with the server's Retry-After (seconds or an HTTP date) as a
// *RetryAfterError; any other status is not. The error names the status
// only: a response body may echo what was sent. It drains and closes the
// body.
func CheckResponse(resp *http.Response, now time.Time) (retry bool, err error) {
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode/100 == 2 {
		return false, nil
	}
	err = fmt.Errorf("%w %d %s", ErrStatus, resp.StatusCode, http.StatusText(resp.StatusCode))
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode/100 != 5 {
		return false, err
	}
	if d, ok := RetryAfter(resp.Header.Get("Retry-After"), now); ok {
		return true, &RetryAfterError{After: d, Err: err}
	}
	return true, err
}

// RetryAfter parses a Retry-After header: delay-seconds or an HTTP date
// (RFC 9110 §10.2.3).
func RetryAfter(h string, now time.Time) (time.Duration, bool) {
	if h == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(h); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// PostError describes a failed request without its URL's query or
// credentials (a Slack incoming-webhook URL is itself a secret): retry is
// true for network errors, false when ctx ended.
func PostError(ctx context.Context, receiver string, err error) (bool, error) {
	err = netx.TransportCause(err) // drop the URL
	if ctx.Err() != nil {
		return false, fmt.Errorf("receiver %s: %w", receiver, err)
	}
	return true, fmt.Errorf("receiver %s: request failed: %w", receiver, err)
}
