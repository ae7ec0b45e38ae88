package main

// TestDocsNameRealCommands holds the documentation to the command tree:
// every `rotator <command> [<subcommand>] [--flag]` mentioned in README.md,
// docs/, runbooks/, examples/, docker-compose.yml and the Dockerfile (in
// code blocks, code spans and prose), and in the commands' own help, must
// name a command that exists and flags it has.

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// proseWords are the English words that follow "rotator" in prose ("rotator
// keeps an inventory"): they are not commands. A word not listed here and
// not a command fails the test; if it is English, add it.
var proseWords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`and appends as can cannot computes connects creates did does
		generated generates has holds inventory itself keeps logs manages never on out passes plan plans
		publishes quickstart reaches recorded records refuses requests retries role rolls rotates sees sends
		shutting so starts still stores then through uses with writes is reads waits makes for depends needs
		will would may must should implements configuration at`) {
		proseWords[w] = true
	}
}

// docTree returns the command tree with the flags cobra adds at execution
// (--help, --version) and its help and completion commands.
func docTree() *cobra.Command {
	root := (&app{}).rootCommand()
	root.InitDefaultHelpCmd()
	root.InitDefaultVersionFlag()
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		c.InitDefaultHelpFlag()
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	return root
}

// docFiles returns the files the test reads, relative to the repository.
func docFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md", "docker-compose.yml", "Dockerfile"}
	for _, pattern := range []string{"docs/*.md", "runbooks/*.md"} {
		m, err := filepath.Glob(filepath.Join(repoRoot, pattern))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range m {
			rel, _ := filepath.Rel(repoRoot, f)
			files = append(files, rel)
		}
	}
	err := filepath.WalkDir(filepath.Join(repoRoot, "examples"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(repoRoot, p)
		files = append(files, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func TestDocsNameRealCommands(t *testing.T) {
	t.Parallel()
	root := docTree()
	var problems []string
	seen := 0
	for _, f := range docFiles(t) {
		data, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		problems = append(problems, checkDoc(root, f, string(data), &seen)...)
	}
	// The commands' own help: examples and long descriptions.
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		name := "`" + c.CommandPath() + " --help`"
		problems = append(problems, checkDoc(root, name+" (long)", c.Long, &seen)...)
		problems = append(problems, checkDoc(root, name+" (examples)", codeBlock(c.Example), &seen)...)
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
	for _, p := range problems {
		t.Error(p)
	}
	// The documentation names commands hundreds of times: finding few
	// means the scan missed them.
	if seen < 200 {
		t.Errorf("only %d command mentions found", seen)
	}
	t.Logf("%d command mentions checked", seen)
}

// codeBlock wraps text in a Markdown code fence.
func codeBlock(s string) string { return "```\n" + s + "\n```\n" }

// TestDocsCheckerFails proves the checker catches what it is for.
func TestDocsCheckerFails(t *testing.T) {
	t.Parallel()
	root := docTree()
	for name, tc := range map[string]struct {
		doc  string
		want string // "" for no problem
	}{
		"made-up command in a span":    {"Run `rotator frobnicate` now.", `no command "frobnicate"`},
		"made-up command in prose":     {"Then rotator frobnicate everything.", `no command "frobnicate"`},
		"made-up command in a block":   {"```sh\nrotator frobnicate --all\n```", `no command "frobnicate"`},
		"made-up flag":                 {"`rotator rotate --frob`", `rotator rotate has no flag --frob`},
		"made-up flag after an arg":    {"```\nrotator rotate notes-api-key --wait --frob\n```", `--frob`},
		"made-up short flag":           {"`rotator credentials list -z`", `has no flag -z`},
		"made-up subcommand":           {"`rotator runs frobnicate RUN`", `rotator runs has no subcommand "frobnicate"`},
		"made-up alternative":          {"`rotator runs list|frob`", `rotator runs has no subcommand "frob"`},
		"flag of another command":      {"`rotator credentials list --wait`", `has no flag --wait`},
		"deprecated flag":              {"`rotator report --format html`", `--format is deprecated or hidden`},
		"continued line":               {"```\nrotator rotate --all \\\n  --frob\n```", `--frob`},
		"go run form":                  {"```\ngo run ./cmd/rotator frobnicate\n```", `no command "frobnicate"`},
		"compose healthcheck":          {`test: ["CMD", "/rotator", "health", "--frob"]`, `--frob`},
		"real command":                 {"`rotator rotate --selector team=x --emergency --reason \"x y\" --wait -o json`", ""},
		"real alternatives":            {"`rotator runs list|show`", ""},
		"optional flag value":          {"`rotator rotate --all --wait[=retired]`", ""},
		"value of a flag":              {"`rotator runs list --state rolled_back -o json`", ""},
		"placeholders":                 {"`rotator runs show <RUN> -o md` and `rotator rotate [ID...] [--all]`", ""},
		"English":                      {"rotator keeps an inventory; rotator runs as a service.", ""},
		"rotator as a flag value":      {"`redis-cli --user rotator --askpass`", ""},
		"global flag first":            {"`rotator --log-level debug serve -f x.yaml`", ""},
		"pipeline ends the command":    {"`rotator credentials list -o json | jq -r .x --frob`", ""},
		"help and completion commands": {"`rotator help rotate` and `rotator completion bash`", ""},
		"exec's command after --":      {"`rotator exec --env T=c -- server --frob`", ""},
		"exec flag before --":          {"`rotator exec --frob -- server`", `rotator exec has no flag --frob`},
		"a URL ending in /rotator":     {"`ROTATOR_DATABASE_URL=postgres://rotator@db/rotator rotator serve`", ""},
		"inside an SQL string":         {"```\npsql -c 'ALTER DATABASE rotator RENAME TO x' \\\n  -c 'ALTER DATABASE y RENAME TO rotator'\n```", ""},
		"Dockerfile CMD":               {"ENTRYPOINT [\"/rotator\"]\nCMD [\"serve\", \"--frob\"]", `rotator serve has no flag --frob`},
	} {
		t.Run(name, func(t *testing.T) {
			file := "doc.md"
			if strings.HasPrefix(tc.doc, "ENTRYPOINT") {
				file = "Dockerfile"
			}
			var seen int
			got := checkDoc(root, file, tc.doc, &seen)
			switch {
			case tc.want == "" && len(got) > 0:
				t.Errorf("problems in a correct text: %q", got)
			case tc.want != "" && (len(got) != 1 || !strings.Contains(got[0], tc.want)):
				t.Errorf("got %q, want one problem saying %q", got, tc.want)
			}
		})
	}
}

// checkDoc returns a problem for every mention in text of a command or flag
// that does not exist.
func checkDoc(root *cobra.Command, file, text string, seen *int) []string {
	var problems []string
	md := strings.HasSuffix(file, ".md") || strings.HasPrefix(file, "`")
	dockerfile := filepath.Base(file) == "Dockerfile"
	fenced := false
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		lineNo := i + 1
		line := lines[i]
		// A shell line continued with a backslash goes on.
		for strings.HasSuffix(strings.TrimRight(line, " "), "\\") && i+1 < len(lines) {
			i++
			line = strings.TrimSuffix(strings.TrimRight(line, " "), "\\") + " " + lines[i]
		}
		if md && strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			continue
		}
		if md {
			line = strings.ReplaceAll(line, `\|`, "|")
		}
		if dockerfile && strings.HasPrefix(line, "CMD [") {
			line = "rotator " + strings.TrimPrefix(line, "CMD ")
		}
		// Code spans and the prose between them are scanned apart: a span
		// ends a command.
		segments := []string{line}
		if !fenced {
			segments = strings.Split(line, "`")
		}
		for s, seg := range segments {
			code := fenced || s%2 == 1
			for _, p := range checkSegment(root, seg, code, seen) {
				problems = append(problems, fmt.Sprintf("%s:%d: %s", file, lineNo, p))
			}
		}
	}
	return problems
}

var (
	commandWord = regexp.MustCompile(`^[a-z][a-z0-9-]*(\|[a-z][a-z0-9-]*)*$`)
	terminators = map[string]bool{"|": true, "||": true, "&&": true, ";": true, ">": true, ">>": true, "<": true, "2>&1": true, "#": true}
)

// trimToken strips quotes, brackets and punctuation around a token.
func trimToken(s string) string {
	return strings.Trim(s, "\"'[](){},;:.!?*")
}

// checkSegment checks every mention of rotator in one code span, code line
// or stretch of prose.
func checkSegment(root *cobra.Command, seg string, code bool, seen *int) []string {
	tokens := strings.Fields(seg)
	var problems []string
	for i, raw := range tokens {
		tok := trimToken(raw)
		if tok != "rotator" && (!strings.HasSuffix(tok, "/rotator") || strings.ContainsAny(tok, ":@")) {
			continue // not the program ("postgres://rotator@db/rotator" is a URL)
		}
		// Inside a quoted SQL or shell string ('... RENAME TO rotator').
		if strings.Contains(raw, "'") {
			continue
		}
		// "--user rotator": a flag's value, not the command; "by rotator."
		// ends a sentence.
		if i > 0 && strings.HasPrefix(trimToken(tokens[i-1]), "-") || endsClause(raw) {
			continue
		}
		if p := checkMention(root, tokens[i+1:], code, seen); p != "" {
			problems = append(problems, p)
		}
	}
	return problems
}

// endsClause reports whether a token ends a sentence or clause ("rotator.",
// "rotator;"), unlike the items of a JSON array ("/rotator",).
func endsClause(raw string) bool {
	raw = strings.TrimRight(raw, "\"'`")
	return strings.HasSuffix(raw, ".") || strings.HasSuffix(raw, ";") || strings.HasSuffix(raw, ":") ||
		strings.HasSuffix(raw, ")") || strings.HasSuffix(raw, "!") || strings.HasSuffix(raw, "?") ||
		strings.HasSuffix(raw, ",") && !strings.Contains(raw, "\"")
}

// checkMention walks the tokens after "rotator" down the command tree and
// returns what does not exist ("" when all does).
func checkMention(root *cobra.Command, tokens []string, code bool, seen *int) string {
	cur := root
	args := false
	defer func() {
		if cur != root {
			*seen++
		}
	}()
	for i := 0; i < len(tokens); i++ {
		raw := tokens[i]
		if terminators[raw] || strings.HasPrefix(raw, "#") {
			return ""
		}
		tok := trimToken(raw)
		if tok == "--" {
			return "" // what follows is another program's (rotator exec -- CMD)
		}
		if tok == "" || tok == "-" {
			continue
		}
		if strings.HasPrefix(tok, "-") {
			f, problem := docFlag(cur, tok)
			if problem != "" {
				return problem
			}
			if f.NoOptDefVal == "" && !strings.Contains(tok, "=") {
				i++ // its value
			}
			continue
		}
		if args || !commandWord.MatchString(tok) {
			// rotator itself takes no argument: "DATABASE rotator RENAME"
			// names no command.
			if cur == root {
				return ""
			}
			// An argument: a code line goes on to its flags; prose stops.
			if !code {
				return ""
			}
			args = true
			continue
		}
		names := strings.Split(tok, "|")
		var next *cobra.Command
		for _, n := range names {
			sub := subcommand(cur, n)
			if sub == nil {
				switch {
				case cur == root && proseWords[n] && len(names) == 1:
					return ""
				case cur == root:
					return fmt.Sprintf("no command %q in `rotator %s` (commands: %s)", n, tok, strings.Join(commandNames(root), ", "))
				case !cur.HasSubCommands() && len(names) == 1:
					next = nil // an argument of a leaf command
				case code || len(names) > 1:
					return fmt.Sprintf("%s has no subcommand %q (subcommands: %s)", cur.CommandPath(), n, strings.Join(commandNames(cur), ", "))
				default:
					return "" // prose: "rotator runs as a service"
				}
				break
			}
			if next == nil {
				next = sub
			}
		}
		if next == nil {
			if !code {
				return ""
			}
			args = true
			continue
		}
		if len(names) > 1 {
			return "" // alternatives: their flags would be ambiguous
		}
		cur = next
	}
	return ""
}

// subcommand returns c's subcommand named (or aliased) name.
func subcommand(c *cobra.Command, name string) *cobra.Command {
	for _, sub := range c.Commands() {
		if sub.Name() == name || slices.Contains(sub.Aliases, name) {
			return sub
		}
	}
	return nil
}

func commandNames(c *cobra.Command) []string {
	var out []string
	for _, sub := range c.Commands() {
		if !sub.Hidden {
			out = append(out, sub.Name())
		}
	}
	return out
}

// docFlag looks a flag up on c (its own and inherited ones).
func docFlag(c *cobra.Command, tok string) (*pflag.Flag, string) {
	// --wait[=retired]: an optional value.
	name, _, _ := strings.Cut(strings.TrimLeft(tok, "-"), "=")
	name, _, _ = strings.Cut(name, "[")
	var f *pflag.Flag
	if strings.HasPrefix(tok, "--") {
		if f = c.Flags().Lookup(name); f == nil {
			f = c.InheritedFlags().Lookup(name)
		}
	} else if len(name) == 1 {
		if f = c.Flags().ShorthandLookup(name); f == nil {
			f = c.InheritedFlags().ShorthandLookup(name)
		}
	}
	switch {
	case f == nil:
		return nil, fmt.Sprintf("%s has no flag %s", c.CommandPath(), strings.Split(tok, "=")[0])
	case f.Hidden || f.Deprecated != "":
		return nil, fmt.Sprintf("%s: %s is deprecated or hidden; document its replacement", c.CommandPath(), strings.Split(tok, "=")[0])
	}
	return f, ""
}
