package proxy

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/secret"
)

// Header templates are delivery's (delivery.ParseTemplate); this file
// holds what only a proxy checks of the headers it injects.

// parseHeaderName checks an injected header's name.
func parseHeaderName(name string) (string, error) {
	if !delivery.ValidHeaderName(name) {
		return "", fmt.Errorf("%s is not a valid HTTP header name (letters, digits and !#$%%&'*+-.^_`|~)", show(name))
	}
	canon := http.CanonicalHeaderKey(name)
	for _, hop := range hopByHop {
		if strings.EqualFold(canon, hop) {
			return "", fmt.Errorf("%s is a hop-by-hop header, which never reaches the upstream; use Authorization or the header the upstream reads", canon)
		}
	}
	if strings.EqualFold(canon, "Host") || strings.EqualFold(canon, "Content-Length") || strings.HasPrefix(strings.ToLower(canon), "mcp-") {
		return "", fmt.Errorf("%s belongs to HTTP or to the MCP transport and cannot carry a credential", canon)
	}
	return canon, nil
}

// hopByHop are the headers a proxy removes (RFC 9110 §7.6.1).
var hopByHop = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// show quotes a string from a flag or file for a message, unless it looks
// like a secret pasted in the wrong place.
func show(s string) string {
	if _, tok := secret.DetectToken(s); tok || secret.HighEntropy(s) || len(s) > 128 {
		return "(a value that looks like a secret, not repeated)"
	}
	return fmt.Sprintf("%q", s)
}
