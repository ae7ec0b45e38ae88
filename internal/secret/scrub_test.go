package secret

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"testing"
)

func TestScrubError(t *testing.T) {
	t.Parallel()
	const canary = "canary+s3cret/value=="
	v := NewString(canary)
	inner := &url.Error{Op: "Post", URL: "https://x/?p=" + url.QueryEscape(canary), Err: context.DeadlineExceeded}
	err := ScrubError(fmt.Errorf("calling api with %s: %w", canary, inner), v)
	if strings.Contains(err.Error(), canary) || strings.Contains(err.Error(), url.QueryEscape(canary)) {
		t.Fatalf("scrubbed error still holds the value: %q", err)
	}
	if !strings.Contains(err.Error(), Redacted) {
		t.Fatalf("scrubbed error %q lacks the marker", err)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Error("errors.Is lost the chain")
	}
	var ue *url.Error
	if !errors.As(err, &ue) {
		t.Error("errors.As lost the chain")
	}
	if errors.Unwrap(err) != nil {
		t.Error("a scrubbed error must not unwrap to the unscrubbed text")
	}
	plain := errors.New("nothing secret here")
	if ScrubError(plain, v) != plain || ScrubError(nil, v) != nil {
		t.Error("errors without the value must be returned as they are")
	}
	if got := ScrubError(errors.New("abc def"), NewString("abc")); got.Error() != "abc def" {
		t.Errorf("values shorter than %d bytes must be left alone, got %q", minScrubLen, got)
	}
}
