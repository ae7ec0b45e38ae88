package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/rotatorhq/rotator/internal/duration"
)

// stickyWriter passes writes through and keeps the first error, so that
// commands can print without checking every write and run still reports a
// lost output (a full disk behind a redirect) once, at the end.
type stickyWriter struct {
	w   io.Writer
	err error
}

func (s *stickyWriter) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n, err := s.w.Write(p)
	if err != nil {
		s.err = err
	}
	return n, err
}

// Output formats (-o). json and yaml are the machine-readable ones: the
// same object with the same field names (DESIGN.md §12).
const (
	formatText  = "text"
	formatTable = "table"
	formatWide  = "wide"
	formatJSON  = "json"
	formatYAML  = "yaml"
)

// checkOutput validates an -o flag against the formats a command supports.
func checkOutput(output string, allowed ...string) error {
	for _, a := range allowed {
		if output == a {
			return nil
		}
	}
	return usagef("-o %q: use %s", output, orList(allowed))
}

// orList renders a, b or c.
func orList(s []string) string {
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " or " + s[len(s)-1]
}

// outputFlag registers -o/--output with the formats a command supports
// (completed by the shell); def is the default.
func outputFlag(cmd *cobra.Command, p *string, def string, formats ...string) {
	cmd.Flags().StringVarP(p, "output", "o", def, "output format: "+orList(formats))
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(formats, cobra.ShellCompDirectiveNoFileComp))
}

// isData reports whether format is json or yaml.
func isData(format string) bool { return format == formatJSON || format == formatYAML }

// writeData writes v as one JSON object (DESIGN.md §12: every -o json
// output is one object with a named array), or with -o yaml as the same
// object in YAML, with the same field names in the same order.
func writeData(w io.Writer, format string, v any) error {
	if format == formatYAML {
		b, err := toYAML(v)
		if err != nil {
			return err
		}
		_, err = w.Write(b)
		return err
	}
	return writeJSON(w, v)
}

// writeJSON writes v as indented JSON.
func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// toYAML renders v as YAML by way of its JSON encoding, so that the keys
// are the JSON field names (and their order) and every value is what -o
// json shows: times as RFC 3339 strings, omitted fields omitted.
func toYAML(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return jsonToYAML(b)
}

// jsonToYAML converts one JSON value to block-style YAML.
func jsonToYAML(b []byte) ([]byte, error) {
	var n yaml.Node
	if err := yaml.Unmarshal(b, &n); err != nil {
		return nil, fmt.Errorf("converting to YAML: %w", err)
	}
	blockStyle(&n)
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(&n); err != nil {
		return nil, fmt.Errorf("converting to YAML: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("converting to YAML: %w", err)
	}
	return buf.Bytes(), nil
}

// blockStyle drops the flow style and quoting that parsing JSON gives every
// node; the encoder then quotes only strings that would otherwise read back
// as another type ("true", "12", "2026-01-01").
func blockStyle(n *yaml.Node) {
	n.Style = 0
	for _, c := range n.Content {
		blockStyle(c)
	}
}

// listOutput holds the output flags every list command has.
type listOutput struct {
	format    string
	noHeaders bool
	quiet     bool
}

// listFormats are the -o formats of list commands.
var listFormats = []string{formatTable, formatWide, formatJSON, formatYAML}

// addListFlags registers -o table|wide|json|yaml, --no-headers and
// -q/--quiet.
func addListFlags(cmd *cobra.Command, lo *listOutput) {
	cmd.Flags().StringVarP(&lo.format, "output", "o", formatTable,
		"output format: table, wide (every column, untruncated), json or yaml")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions(listFormats, cobra.ShellCompDirectiveNoFileComp))
	cmd.Flags().BoolVar(&lo.noHeaders, "no-headers", false, "print tables without the header row")
	cmd.Flags().BoolVarP(&lo.quiet, "quiet", "q", false, "print only ids, one per line")
}

// check validates the flags.
func (lo listOutput) check() error {
	if err := checkOutput(lo.format, listFormats...); err != nil {
		return err
	}
	if lo.quiet && isData(lo.format) {
		return usagef("-q prints ids only; it cannot be combined with -o %s", lo.format)
	}
	return nil
}

// relTime renders a past or future instant relative to now, compactly.
func relTime(t *time.Time, now time.Time) string {
	if t == nil {
		return "-"
	}
	d := t.Sub(now).Round(time.Second)
	switch {
	case d == 0:
		return "now"
	case d > 0:
		return "in " + humanDuration(d)
	default:
		return humanDuration(-d) + " ago"
	}
}

// humanDuration renders d with at most two units (3d4h, 5m10s).
func humanDuration(d time.Duration) string {
	if d < time.Minute {
		return d.Round(time.Second).String()
	}
	days := d / (24 * time.Hour)
	d -= days * 24 * time.Hour
	h := d / time.Hour
	d -= h * time.Hour
	m := d / time.Minute
	s := (d - m*time.Minute) / time.Second
	switch {
	case days > 0 && h > 0:
		return fmt.Sprintf("%dd%dh", days, h)
	case days > 0:
		return fmt.Sprintf("%dd", days)
	case h > 0 && m > 0:
		return fmt.Sprintf("%dh%dm", h, m)
	case h > 0:
		return fmt.Sprintf("%dh", h)
	case s > 0:
		return fmt.Sprintf("%dm%ds", m, s)
	}
	return fmt.Sprintf("%dm", m)
}

func secondsDuration(s int64) string {
	if s == 0 {
		return "-"
	}
	return duration.Format(time.Duration(s) * time.Second)
}

// parseSelector parses k=v[,k=v...] label selectors.
func parseSelector(sel []string) (map[string]string, error) {
	out := map[string]string{}
	for _, s := range sel {
		for _, part := range strings.Split(s, ",") {
			part = strings.TrimSpace(part)
			if part == "" {
				continue
			}
			k, v, ok := strings.Cut(part, "=")
			if !ok || k == "" {
				return nil, usagef("--selector %q: use key=value, for example team=platform", part)
			}
			out[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return out, nil
}
