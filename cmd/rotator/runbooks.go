package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/duration"
	"github.com/rotatorhq/rotator/internal/runbook"
	"github.com/rotatorhq/rotator/internal/store"
)

// errRunbookProblems reports that runbooks check found problems (exit 1).
var errRunbookProblems = errors.New("runbook problems found")

// requiredFrontMatter are the keys every runbook's front matter must have.
var requiredFrontMatter = []string{"id", "version", "owner", "reviewed"}

func (a *app) runbooksCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "runbooks",
		Aliases: []string{"runbook"},
		Short:   "Check the runbooks credentials link to",
	}
	cmd.AddCommand(a.runbooksCheckCommand())
	return cmd
}

// runbookCheck is the outcome of one runbook file.
type runbookCheck struct {
	File     string   `json:"file"`
	ID       string   `json:"id"`
	Version  string   `json:"version"`
	Owner    string   `json:"owner"`
	Reviewed string   `json:"reviewed"`
	AgeDays  *int     `json:"age_days"`
	Digest   string   `json:"digest"`
	Problems []string `json:"problems"`
}

// runbookLink is the outcome of one credential's runbook reference.
type runbookLink struct {
	Credential string  `json:"credential"`
	Runbook    string  `json:"runbook"`
	File       *string `json:"file"`
	Problem    *string `json:"problem"`
}

// runbooksResult is the output of runbooks check.
type runbooksResult struct {
	Runbooks    []runbookCheck `json:"runbooks"`
	Credentials []runbookLink  `json:"credentials"`
	Problems    []string       `json:"problems"`
}

func (a *app) runbooksCheckCommand() *cobra.Command {
	var (
		output, file, maxAge, baseDir string
		dirs                          []string
		maxConfigSize                 int64
	)
	cmd := &cobra.Command{
		Use:   "check [-f CONFIG]",
		Short: "Check that every linked runbook and anchor exists and was reviewed recently",
		Long: `Check the runbooks of the inventory (from the database, or from a configuration
file with -f):

  - every credential names a runbook whose file and anchor exist;
  - every runbook (those credentials link, and every .md file in --dir,
    by default the runbooks/ directory) opens with front matter holding
    id, version, owner and reviewed (a date), with unique ids;
  - reviewed is no older than --max-age.

Lists every problem and exits with code 1 if there is any.`,
		Example: `  rotator runbooks check
  rotator runbooks check -f rotator.yaml --max-age 90d
  rotator runbooks check --dir runbooks --dir ops/runbooks -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, formatText, formatJSON, formatYAML); err != nil {
				return err
			}
			age, err := duration.Parse(maxAge)
			if err != nil || age <= 0 {
				return usagef("--max-age %q: use a positive duration such as 180d", maxAge)
			}
			ctx := cmd.Context()
			var creds []credentialRunbook
			base := baseDir
			if file != "" {
				cfg, err := loadConfigForRunbooks(file, maxConfigSize)
				if err != nil {
					return err
				}
				if base == "" {
					base = filepath.Dir(file)
				}
				for _, c := range cfg.Credentials {
					creds = append(creds, credentialRunbook{id: c.ID, ref: c.Runbook})
				}
			} else {
				if base == "" {
					base = "."
				}
				if creds, err = a.storedRunbooks(ctx); err != nil {
					return err
				}
			}
			if len(dirs) == 0 {
				if d, ok := findDir(base, "runbooks"); ok {
					dirs = []string{d}
				}
			}
			res, err := checkRunbooks(creds, base, dirs, age, time.Now().UTC())
			if err != nil {
				return err
			}
			if isData(output) {
				if err := writeData(a.stdout, output, res); err != nil {
					return err
				}
			} else if err := printRunbooks(a.stdout, res); err != nil {
				return err
			}
			if len(res.Problems) > 0 {
				return fmt.Errorf("%w: %d problem(s)", errRunbookProblems, len(res.Problems))
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "check the credentials of this configuration file instead of the database")
	cmd.Flags().StringVar(&maxAge, "max-age", "180d", "flag runbooks whose reviewed date is older than this")
	cmd.Flags().StringSliceVar(&dirs, "dir", nil, "also check every .md file in this directory (repeatable; default: the runbooks/ directory)")
	cmd.Flags().StringVar(&baseDir, "runbook-dir", "", "directory relative runbook paths are resolved from (default: the config file's directory, or the working directory)")
	outputFlag(cmd, &output, formatText, formatText, formatJSON, formatYAML)
	maxConfigSizeFlag(cmd.Flags(), &maxConfigSize)
	return cmd
}

type credentialRunbook struct{ id, ref string }

// loadConfigForRunbooks parses a configuration file without failing on
// runbook problems, which the check reports itself.
func loadConfigForRunbooks(file string, maxSize int64) (*config.Config, error) {
	data, err := config.ReadFile(file, maxSize)
	if err != nil {
		if err := configSizeError(err); errors.As(err, new(usageError)) {
			return nil, err
		}
		return nil, usagef("reading config %s: %v", file, err)
	}
	return config.Parse(file, data, config.Options{BaseDir: filepath.Dir(file)})
}

// storedRunbooks lists every live credential's runbook reference, a page at
// a time.
func (a *app) storedRunbooks(ctx context.Context) ([]credentialRunbook, error) {
	st, err := a.openStore(ctx)
	if err != nil {
		return nil, err
	}
	defer st.Close()
	var out []credentialRunbook
	after := ""
	for {
		page, err := st.ListCredentials(ctx, store.CredentialFilter{AfterID: after, Limit: 1000})
		if err != nil {
			return nil, fmt.Errorf("listing credentials: %w", err)
		}
		for _, c := range page {
			out = append(out, credentialRunbook{id: c.ID, ref: c.Runbook})
		}
		if len(page) < 1000 {
			return out, nil
		}
		after = page[len(page)-1].ID
	}
}

// findDir looks for a directory named name in base and its parents, as
// runbook references are resolved.
func findDir(base, name string) (string, bool) {
	abs, err := filepath.Abs(base)
	if err != nil {
		return "", false
	}
	for dir := abs; ; {
		if fi, err := os.Stat(filepath.Join(dir, name)); err == nil && fi.IsDir() {
			return filepath.Join(dir, name), true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// checkRunbooks resolves every credential's runbook and checks the front
// matter of every runbook found.
func checkRunbooks(creds []credentialRunbook, base string, dirs []string, maxAge time.Duration, now time.Time) (runbooksResult, error) {
	res := runbooksResult{Runbooks: []runbookCheck{}, Credentials: []runbookLink{}, Problems: []string{}}
	files := map[string]bool{}
	var order []string
	addFile := func(f string) {
		if !files[f] {
			files[f] = true
			order = append(order, f)
		}
	}
	for _, c := range creds {
		link := runbookLink{Credential: c.id, Runbook: c.ref}
		if strings.TrimSpace(c.ref) == "" {
			p := fmt.Sprintf("credential %s links no runbook", c.id)
			link.Problem = &p
			res.Problems = append(res.Problems, p)
			res.Credentials = append(res.Credentials, link)
			continue
		}
		ref, err := runbook.Resolve(base, c.ref)
		if ref.File != "" {
			f := ref.File
			link.File = &f
			addFile(ref.File)
		}
		if err != nil {
			p := fmt.Sprintf("credential %s: runbook %s: %v", c.id, c.ref, err)
			link.Problem = &p
			res.Problems = append(res.Problems, p)
		}
		res.Credentials = append(res.Credentials, link)
	}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return res, usagef("--dir %s: %v", dir, err)
		}
		for _, e := range entries {
			if !e.IsDir() && strings.HasSuffix(strings.ToLower(e.Name()), ".md") {
				abs, err := filepath.Abs(filepath.Join(dir, e.Name()))
				if err != nil {
					return res, fmt.Errorf("runbook %s: %w", e.Name(), err)
				}
				addFile(abs)
			}
		}
	}
	ids := map[string]string{}
	for _, f := range order {
		rc := checkRunbookFile(f, maxAge, now)
		if rc.ID != "" {
			if other, dup := ids[rc.ID]; dup {
				rc.Problems = append(rc.Problems, fmt.Sprintf("id %q is also the id of %s", rc.ID, displayPath(other)))
			} else {
				ids[rc.ID] = f
			}
		}
		for _, p := range rc.Problems {
			res.Problems = append(res.Problems, displayPath(f)+": "+p)
		}
		rc.File = displayPath(f)
		res.Runbooks = append(res.Runbooks, rc)
	}
	return res, nil
}

func checkRunbookFile(file string, maxAge time.Duration, now time.Time) runbookCheck {
	rc := runbookCheck{File: file, Problems: []string{}}
	data, err := os.ReadFile(file)
	if err != nil {
		rc.Problems = append(rc.Problems, fmt.Sprintf("cannot read it: %v", err))
		return rc
	}
	rc.Digest = runbook.Digest(data)
	fm, err := runbook.FrontMatter(data)
	if err != nil {
		rc.Problems = append(rc.Problems, err.Error())
		return rc
	}
	if fm == nil {
		rc.Problems = append(rc.Problems, "no front matter: open the file with a --- block holding id, version, owner and reviewed")
		return rc
	}
	rc.ID, rc.Version, rc.Owner, rc.Reviewed = fm["id"], fm["version"], fm["owner"], fm["reviewed"]
	var missing []string
	for _, k := range requiredFrontMatter {
		if strings.TrimSpace(fm[k]) == "" {
			missing = append(missing, k)
		}
	}
	if len(missing) > 0 {
		rc.Problems = append(rc.Problems, "front matter lacks "+strings.Join(missing, ", "))
	}
	if rc.Reviewed == "" {
		return rc
	}
	reviewed, err := parseReviewed(rc.Reviewed)
	if err != nil {
		rc.Problems = append(rc.Problems, fmt.Sprintf("reviewed %q is not a date (write it as 2026-01-31)", rc.Reviewed))
		return rc
	}
	age := now.Sub(reviewed)
	days := int(age / (24 * time.Hour))
	rc.AgeDays = &days
	switch {
	case age > maxAge:
		rc.Problems = append(rc.Problems, fmt.Sprintf("last reviewed %s, %d days ago: more than the allowed %s", rc.Reviewed, days, duration.Format(maxAge)))
	case age < -24*time.Hour:
		rc.Problems = append(rc.Problems, fmt.Sprintf("reviewed date %s is in the future", rc.Reviewed))
	}
	return rc
}

func parseReviewed(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, s)
}

// displayPath shows a file relative to the working directory when it is
// inside it.
func displayPath(file string) string {
	wd, err := os.Getwd()
	if err != nil {
		return file
	}
	if rel, err := filepath.Rel(wd, file); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return file
}

func printRunbooks(w io.Writer, res runbooksResult) error {
	t := newTable(w, "RUNBOOK", "ID", "VERSION", "OWNER", "REVIEWED", "STATUS")
	for _, r := range res.Runbooks {
		status := "ok"
		if len(r.Problems) > 0 {
			status = fmt.Sprintf("%d problem(s)", len(r.Problems))
		}
		t.row(r.File, orDash(r.ID), orDash(r.Version), orDash(r.Owner), orDash(r.Reviewed), status)
	}
	if err := t.flush(); err != nil {
		return err
	}
	bad := slices.IndexFunc(res.Credentials, func(l runbookLink) bool { return l.Problem != nil }) >= 0
	fmt.Fprintf(w, "\n%d credential(s) checked", len(res.Credentials))
	if !bad {
		fmt.Fprintln(w, ": every runbook link resolves.")
	} else {
		fmt.Fprintln(w, ".")
	}
	if len(res.Problems) == 0 {
		_, err := fmt.Fprintln(w, "No problems.")
		return err
	}
	fmt.Fprintf(w, "\n%d problem(s):\n", len(res.Problems))
	for _, p := range res.Problems {
		fmt.Fprintf(w, "  - %s\n", p)
	}
	return nil
}
