package scan

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/rotatorhq/rotator/internal/secret"
)

// Formats of WriteResult.
const (
	FormatText  = "text"
	FormatJSON  = "json"
	FormatSARIF = "sarif"
)

// WriteResult writes a scan result in a format: text (one finding per line
// with its fix), json ({"findings": [...], "files", "skipped"}) or sarif
// (SARIF 2.1.0). version is rotator's version, for SARIF's tool driver.
func WriteResult(w io.Writer, format string, r *Result, version string) error {
	switch format {
	case FormatJSON:
		out := *r
		if out.Findings == nil {
			out.Findings = []Finding{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	case FormatSARIF:
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(SARIF(r, version))
	case FormatText:
		bw := bufio.NewWriter(w)
		files := map[string]bool{}
		for _, f := range r.Findings {
			files[f.File] = true
			fmt.Fprintf(bw, "%s:%d:%d: %s %s (%s): %s %s\n    fix: %s\n", f.File, f.Line, f.Column, f.Severity, f.Rule, f.Kind, f.Description, f.Preview, f.Fix)
		}
		fmt.Fprintf(bw, "%d finding(s) in %d file(s); %d file(s) scanned; skipped: %d binary, %d over the size limit, %d unreadable, %d .git director(ies)\n",
			len(r.Findings), len(files), r.Files, r.Skipped.Binary, r.Skipped.TooLarge, r.Skipped.Unreadable, r.Skipped.GitDirs)
		return bw.Flush()
	}
	return fmt.Errorf("format %q: use text, json or sarif", format)
}

// Fails reports whether the findings reach a --fail-on level: "any"
// finding, or one of severity "high".
func Fails(fs []Finding, failOn string) bool {
	for _, f := range fs {
		if failOn != "high" || f.Severity == SeverityHigh {
			return true
		}
	}
	return false
}

// SARIF types (the parts of SARIF 2.1.0 that code-scanning UIs read).
type (
	sarifLog struct {
		Schema  string     `json:"$schema"`
		Version string     `json:"version"`
		Runs    []sarifRun `json:"runs"`
	}
	sarifRun struct {
		Tool       sarifTool      `json:"tool"`
		ColumnKind string         `json:"columnKind"`
		Results    []sarifResult  `json:"results"`
		Properties map[string]any `json:"properties,omitempty"`
	}
	sarifTool struct {
		Driver sarifDriver `json:"driver"`
	}
	sarifDriver struct {
		Name           string      `json:"name"`
		Version        string      `json:"version,omitempty"`
		InformationURI string      `json:"informationUri"`
		Rules          []sarifRule `json:"rules"`
	}
	sarifText struct {
		Text string `json:"text"`
	}
	sarifRule struct {
		ID                   string         `json:"id"`
		Name                 string         `json:"name"`
		ShortDescription     sarifText      `json:"shortDescription"`
		Help                 sarifText      `json:"help"`
		DefaultConfiguration map[string]any `json:"defaultConfiguration"`
		Properties           map[string]any `json:"properties"`
	}
	sarifResult struct {
		RuleID              string            `json:"ruleId"`
		RuleIndex           int               `json:"ruleIndex"`
		Level               string            `json:"level"`
		Message             sarifText         `json:"message"`
		Locations           []sarifLocation   `json:"locations"`
		PartialFingerprints map[string]string `json:"partialFingerprints"`
		Properties          map[string]any    `json:"properties"`
	}
	sarifLocation struct {
		PhysicalLocation struct {
			ArtifactLocation struct {
				URI       string `json:"uri"`
				URIBaseID string `json:"uriBaseId,omitempty"`
			} `json:"artifactLocation"`
			Region struct {
				StartLine   int `json:"startLine"`
				StartColumn int `json:"startColumn"`
			} `json:"region"`
		} `json:"physicalLocation"`
	}
)

func level(sev string) string {
	switch sev {
	case SeverityHigh:
		return "error"
	case SeverityMedium:
		return "warning"
	}
	return "note"
}

func securitySeverity(sev string) string {
	switch sev {
	case SeverityHigh:
		return "8.5"
	case SeverityMedium:
		return "6.0"
	}
	return "3.0"
}

// SARIF returns the result as a SARIF 2.1.0 log: one run, every rule of
// rules.yaml in the driver, one result per finding with a relative URI
// (against %SRCROOT%) where the path is relative, and the finding's
// fingerprint as a partial fingerprint.
func SARIF(r *Result, version string) any {
	run := sarifRun{ColumnKind: "unicodeCodePoints", Results: []sarifResult{}}
	run.Tool.Driver = sarifDriver{Name: "rotator", Version: version, InformationURI: "https://github.com/rotatorhq/rotator/blob/main/docs/scan.md"}
	index := map[string]int{}
	for i, rule := range secret.Rules() {
		index[rule.ID] = i
		help := fixFile
		if rule.Kind == secret.RuleToolParam {
			help = fixToolInput
		}
		run.Tool.Driver.Rules = append(run.Tool.Driver.Rules, sarifRule{
			ID: rule.ID, Name: ruleName(rule.ID), ShortDescription: sarifText{rule.Description}, Help: sarifText{help},
			DefaultConfiguration: map[string]any{"level": level(rule.Severity)},
			Properties:           map[string]any{"tags": []string{"security", "secret"}, "security-severity": securitySeverity(rule.Severity)},
		})
	}
	for _, f := range r.Findings {
		res := sarifResult{
			RuleID: f.Rule, RuleIndex: index[f.Rule], Level: level(f.Severity),
			Message:             sarifText{fmt.Sprintf("%s (%s): %s. %s", f.Description, f.Kind, f.Preview, f.Fix)},
			PartialFingerprints: map[string]string{"rotatorFingerprint/v1": f.Fingerprint},
			Properties:          map[string]any{"kind": f.Kind, "severity": f.Severity},
		}
		var loc sarifLocation
		p := filepath.ToSlash(f.File)
		if filepath.IsAbs(f.File) {
			loc.PhysicalLocation.ArtifactLocation.URI = (&url.URL{Scheme: "file", Path: p}).String()
		} else {
			loc.PhysicalLocation.ArtifactLocation.URI = (&url.URL{Path: strings.TrimPrefix(p, "./")}).String()
			loc.PhysicalLocation.ArtifactLocation.URIBaseID = "%SRCROOT%"
		}
		loc.PhysicalLocation.Region.StartLine = f.Line
		loc.PhysicalLocation.Region.StartColumn = f.Column
		res.Locations = []sarifLocation{loc}
		run.Results = append(run.Results, res)
	}
	run.Properties = map[string]any{"filesScanned": r.Files, "skipped": r.Skipped}
	return sarifLog{Schema: "https://json.schemastore.org/sarif-2.1.0.json", Version: "2.1.0", Runs: []sarifRun{run}}
}

// ruleName turns github-pat into GithubPat, SARIF's reportingDescriptor name.
func ruleName(id string) string {
	var b strings.Builder
	for _, p := range strings.Split(id, "-") {
		if p != "" {
			b.WriteString(strings.ToUpper(p[:1]) + p[1:])
		}
	}
	return b.String()
}

// LoadBaseline reads a baseline: the JSON output of an earlier scan
// (rotator scan --format json). Its findings' fingerprints are returned.
func LoadBaseline(path string) (map[string]bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("baseline: %w", err)
	}
	var v struct {
		Findings []struct {
			Fingerprint string `json:"fingerprint"`
		} `json:"findings"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("baseline %s: not the JSON output of 'rotator scan --format json': %v", path, err)
	}
	if v.Findings == nil {
		return nil, fmt.Errorf("baseline %s: no \"findings\" array; write one with 'rotator scan --format json PATH > %s'", path, path)
	}
	set := map[string]bool{}
	for i, f := range v.Findings {
		if f.Fingerprint == "" {
			return nil, fmt.Errorf("baseline %s: finding %d has no fingerprint", path, i+1)
		}
		set[f.Fingerprint] = true
	}
	return set, nil
}

// FilterBaseline drops the findings whose fingerprint is in the baseline.
func FilterBaseline(fs []Finding, baseline map[string]bool) []Finding {
	out := fs[:0:0]
	for _, f := range fs {
		if !baseline[f.Fingerprint] {
			out = append(out, f)
		}
	}
	return out
}
