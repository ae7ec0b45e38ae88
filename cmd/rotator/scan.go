package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/bytesize"
	"github.com/rotatorhq/rotator/internal/scan"
)

func (a *app) scanCommand() *cobra.Command {
	var (
		format, output, failOn, baseline, outFile string
		diff, fix                                 bool
		maxSize                                   int64 = scan.DefaultMaxFileSize
	)
	cmd := &cobra.Command{
		Use:   "scan PATH... | scan --diff [ROOT] < DIFF",
		Short: "Find exposed secrets: MCP client configs, MCP tool definitions, any repository file",
		Long: `Scan files and directories for secrets that are already exposed:

  - MCP client configurations (Claude Desktop, Claude Code .mcp.json and
    ~/.claude.json, VS Code .vscode/mcp.json, Cursor, Windsurf, Zed
    context_servers, Continue config.yaml, Codex config.toml, Gemini CLI
    settings.json, MCP registry server.json): env values, headers, args
    (--api-key VALUE, connection strings with passwords), URLs with
    user-info or credential query parameters;
  - MCP tool definitions whose input schema asks the model for a
    credential (JSON, YAML, TypeScript, Python, Go): kind
    credential-exposed-to-model;
  - any other file: .env, YAML, JSON, TOML, source, ColdFusion .cfm/.cfc.

References (${env:X}, ${input:x}, ${VAR}, ${{ secrets.X }}, op://...) and
placeholders (<TOKEN>, your-token-here, changeme, AWS's documented example
keys) are not findings. The rules are internal/secret/rules.yaml. A line
holding "rotator:ignore" is not reported.

Each finding names file:line:column, the rule, its severity, a masked
preview (never the value) and the fix. .git directories, binary files and
files over --max-size are skipped and counted.

--diff reads a unified diff (git diff --cached) on stdin and reports only
what it adds, for pre-commit hooks; ROOT (default .) is where its paths are.

--fix rewrites Claude Desktop, VS Code and Cursor configurations so that
they hold no secret (a backup is written beside each file), and prints the
rotator configuration that holds the credentials and what is left to do.

Exit status: 1 when findings reach --fail-on (any, or high severity only),
0 when none do, 2 on usage errors.`,
		Example: `  rotator scan .
  rotator scan ~/Library/Application\ Support/Claude/claude_desktop_config.json
  rotator scan --format sarif --out rotator.sarif .
  git diff --cached -U0 | rotator scan --diff
  rotator scan --format json . > baseline.json && rotator scan --baseline baseline.json .
  rotator scan --fix .vscode/mcp.json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("output") {
				if cmd.Flags().Changed("format") && output != format {
					return usagef("--format %s and -o %s disagree: give one of them", format, output)
				}
				format = output
			}
			if format != scan.FormatText && format != scan.FormatJSON && format != scan.FormatSARIF {
				return usagef("--format %q: use text, json or sarif", format)
			}
			if failOn != "any" && failOn != "high" {
				return usagef("--fail-on %q: use any or high", failOn)
			}
			if fix && diff {
				return usagef("--fix and --diff do not go together: --fix rewrites whole files")
			}
			var bl map[string]bool
			if baseline != "" {
				var err error
				if bl, err = scan.LoadBaseline(baseline); err != nil {
					return usageError{err}
				}
			}
			opts := scan.Options{MaxFileSize: maxSize}
			var (
				res *scan.Result
				err error
			)
			switch {
			case diff:
				if len(args) > 1 {
					return usagef("--diff takes at most one ROOT (the directory the diff's paths are relative to), got %d", len(args))
				}
				root := "."
				if len(args) == 1 {
					root = args[0]
				}
				res, err = scan.ScanDiff(cmd.Context(), os.Stdin, root, opts)
			default:
				if len(args) == 0 {
					return usagef("name at least one PATH to scan (a file or directory, such as .), or use --diff")
				}
				res, err = scan.Scan(cmd.Context(), args, opts)
			}
			if err != nil {
				if errors.Is(err, fs.ErrNotExist) {
					return usageError{err}
				}
				return err
			}
			if bl != nil {
				res.Findings = scan.FilterBaseline(res.Findings, bl)
			}
			if fix {
				return a.scanFix(res)
			}
			var w io.Writer = a.stdout
			if outFile != "" {
				f, err := os.Create(outFile)
				if err != nil {
					return err
				}
				defer f.Close()
				w = f
			}
			if err := scan.WriteResult(w, format, res, version); err != nil {
				return err
			}
			if scan.Fails(res.Findings, failOn) {
				return messageError{msg: fmt.Sprintf("%d finding(s) reach --fail-on %s", len(res.Findings), failOn), err: scan.ErrFindings}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&format, "format", scan.FormatText, "output format: text, json or sarif")
	f.StringVarP(&output, "output", "o", scan.FormatText, "same as --format")
	f.StringVar(&outFile, "out", "", "write the findings to `FILE` instead of standard output")
	f.StringVar(&failOn, "fail-on", "any", "exit 1 on `any` finding, or only on findings of severity high")
	f.StringVar(&baseline, "baseline", "", "JSON output of an earlier scan (`FILE`): its findings are not reported")
	f.BoolVar(&diff, "diff", false, "read a unified diff on stdin and scan only the lines it adds")
	f.BoolVar(&fix, "fix", false, "rewrite Claude Desktop, VS Code and Cursor MCP configs to hold no secret (backup beside each)")
	f.Var(bytesize.Value{N: &maxSize}, "max-size", "skip (and count) files larger than `SIZE`")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{"text", "json", "sarif"}, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("fail-on", cobra.FixedCompletions([]string{"any", "high"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// scanFix rewrites the MCP client configurations of the result and prints
// what changed and what is left; exit 1 while anything is left.
func (a *app) scanFix(res *scan.Result) error {
	rep, err := scan.FixAll(res, time.Now())
	if rep != nil {
		if werr := rep.Write(a.stdout); werr != nil && err == nil {
			err = werr
		}
	}
	if err != nil {
		return err
	}
	if n := rep.Remaining(); n > 0 {
		return messageError{msg: fmt.Sprintf("%d finding(s) left to fix by hand", n), err: scan.ErrFindings}
	}
	return nil
}
