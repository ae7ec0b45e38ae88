package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/rotatorhq/rotator/internal/view"
)

// grantedScopeText renders a credential's granted scope, saying so when the
// resource did not report it.
func grantedScopeText(v view.Credential) string {
	if !v.GrantedScopeReported {
		return "not reported (the resource did not say which scope it granted)"
	}
	return strings.Join(v.GrantedScope, ", ")
}

// printValueHashes lists each version's sha256, one per line (whole, never
// cut to fit a table), so that a token a server logged as its SHA-256 can be
// matched to its version.
func printValueHashes(w io.Writer, versions []view.Version) error {
	header := false
	for _, ver := range versions {
		if ver.SHA256 == "" {
			continue
		}
		if !header {
			if _, err := fmt.Fprintln(w, "Value hashes (match a token a server logged as its sha256):"); err != nil {
				return err
			}
			header = true
		}
		if _, err := fmt.Fprintf(w, "  %s  %s\n", ver.ID, ver.SHA256); err != nil {
			return err
		}
	}
	return nil
}
