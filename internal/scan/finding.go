// Package scan finds secrets that are already exposed: literal credentials
// in MCP client configurations and in the files of a repository, and MCP
// tool definitions whose input schema asks the model for a credential. Its
// rules are the data file internal/secret/rules.yaml. It also rewrites MCP
// client configurations to hold references (Fix) and turns them into a
// rotator configuration (Import).
//
// No finding, error or output of this package holds a secret: a finding
// carries a masked preview and a fingerprint (a truncated SHA-256 of rule
// and value, for baselines), never the value.
package scan

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Finding kinds.
const (
	// KindFile is a literal secret in a file that is not an MCP client
	// configuration (.env, YAML, source, ColdFusion, ...).
	KindFile = "secret-in-file"
	// KindMCPConfig is a literal secret in an MCP client configuration.
	KindMCPConfig = "secret-in-mcp-config"
	// KindToolInput is an MCP tool input that asks the model for a
	// credential: the credential is exposed to the model.
	KindToolInput = "credential-exposed-to-model"
)

// Severities, from the rules.
const (
	SeverityHigh   = "high"
	SeverityMedium = "medium"
	SeverityLow    = "low"
)

// Finding is one exposed secret (or one tool input asking for one).
type Finding struct {
	File     string `json:"file"`
	Line     int    `json:"line"`
	Column   int    `json:"column"`
	Rule     string `json:"rule"`
	Severity string `json:"severity"`
	Kind     string `json:"kind"`
	// Preview is the masked value: a few leading characters and the
	// length, never the whole value.
	Preview string `json:"preview"`
	Fix     string `json:"fix"`
	// Fingerprint identifies the finding in a baseline: the first 16 hex
	// digits of SHA-256 over rule, file and value. It does not move with
	// the line.
	Fingerprint string `json:"fingerprint"`
	// Description says what was found, from the rule.
	Description string `json:"description"`

	// Server is the MCP server the value belongs to (client configs) and
	// Name the variable, header or flag that holds it; used by Fix and
	// Import, not printed.
	Server string `json:"-"`
	Name   string `json:"-"`
	// value is the secret itself, kept in memory for Fix and Import only.
	value string
	// Where is the place in an MCP server entry: env, header, arg, url,
	// command or other.
	Where  string `json:"-"`
	remote bool
	// prefix and suffix are what the string holding the value has around
	// it ("Bearer " in a header), for Fix and Import.
	prefix, suffix string
	// credID is the rotator credential Fix delivers the value from.
	credID string
	// off is the byte offset of the value in the file.
	off int
	// prio orders findings at one position: the more specific wins.
	prio int
}

// Value returns the exposed value, for Import and Fix, which must deliver
// it to rotator's store rather than print it. Never print it.
func (f Finding) Value() string { return f.value }

// Mask returns a preview of a secret that does not reveal it: at most four
// leading characters (fewer for short values, none below 8 characters),
// asterisks, and the length.
func Mask(v string) string {
	n := utf8.RuneCountInString(v)
	keep := 0
	switch {
	case n >= 32:
		keep = 4
	case n >= 16:
		keep = 3
	case n >= 8:
		keep = 2
	}
	prefix := string([]rune(v)[:keep])
	return fmt.Sprintf("%s****** (%d chars)", prefix, n)
}

func fingerprint(rule, file, value string) string {
	h := sha256.New()
	h.Write([]byte(rule))
	h.Write([]byte{0})
	h.Write([]byte(file))
	h.Write([]byte{0})
	h.Write([]byte(value))
	return hex.EncodeToString(h.Sum(nil)[:8])
}

// Fix texts per kind of place.
const (
	fixFile      = "Replace the literal with a reference (${env:NAME}, ${file:PATH}, ${aws-sm:ID}) and rotate the value: it is exposed."
	fixStdio     = "Run the server through 'rotator exec --env %s=CRED -- ...' (rotator scan --fix rewrites the file) and rotate the value: it is exposed."
	fixRemote    = "Send it through 'rotator proxy' or 'rotator headers' (or the client's input/env mechanism) instead of the literal (rotator scan --fix) and rotate the value: it is exposed."
	fixMCPOther  = "Replace the literal with the client's own reference (${env:NAME}, ${input:id}) or deliver it with rotator, and rotate the value: it is exposed."
	fixToolInput = "Do not ask the model for a credential: remove the input from the tool's schema, have the server read the credential from its environment or request headers, and inject it at the transport layer with rotator (exec --env, headers, proxy)."
)

func fixFor(kind, server, name string, remote bool) string {
	switch kind {
	case KindToolInput:
		return fixToolInput
	case KindMCPConfig:
		if server == "" {
			return fixMCPOther
		}
		if remote {
			return fixRemote
		}
		if name == "" || strings.ContainsAny(name, " -") {
			name = "NAME"
		}
		return fmt.Sprintf(fixStdio, name)
	}
	return fixFile
}
