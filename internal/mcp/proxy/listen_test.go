package proxy

import (
	"strings"
	"testing"
)

// An upstream URL that does not parse is refused without quoting it: it
// may hold a token or a password, and a *url.Error quotes it whole.
func TestUpstreamURLErrorHidesThePassword(t *testing.T) {
	// rotator:ignore: a made-up token (as the user name) in a URL that does not parse
	_, err := checkUpstreamURL("https://hunter2@mcp example.com/mcp")
	if err == nil {
		t.Fatal("accepted")
	}
	if strings.Contains(err.Error(), "hunter2") || !strings.HasPrefix(err.Error(), "upstream URL is not a URL: ") {
		t.Errorf("error %q", err)
	}
}
