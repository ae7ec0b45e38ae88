package runbook

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/rotatorhq/rotator/internal/duration"
)

// CredentialRef is a credential's runbook reference, as checked by Check.
type CredentialRef struct{ ID, Ref string }

// requiredFrontMatter are the keys every runbook's front matter must have.
var requiredFrontMatter = []string{"id", "version", "owner", "reviewed"}

// FileCheck is the outcome of one runbook file (runbooks check, doctor).
type FileCheck struct {
	File     string   `json:"file"`
	ID       string   `json:"id"`
	Version  string   `json:"version"`
	Owner    string   `json:"owner"`
	Reviewed string   `json:"reviewed"`
	AgeDays  *int     `json:"age_days"`
	Digest   string   `json:"digest"`
	Problems []string `json:"problems"`
}

// LinkCheck is the outcome of one credential's runbook reference.
type LinkCheck struct {
	Credential string  `json:"credential"`
	Runbook    string  `json:"runbook"`
	File       *string `json:"file"`
	Problem    *string `json:"problem"`
}

// CheckResult is the outcome of Check.
type CheckResult struct {
	Runbooks    []FileCheck `json:"runbooks"`
	Credentials []LinkCheck `json:"credentials"`
	Problems    []string    `json:"problems"`
}

// FindDir looks for a directory named name in base and its parents, as
// runbook references are resolved.
func FindDir(base, name string) (string, bool) {
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

// Check resolves every credential's runbook and checks the front
// matter of every runbook found.
func Check(creds []CredentialRef, base string, dirs []string, maxAge time.Duration, now time.Time) (CheckResult, error) {
	res := CheckResult{Runbooks: []FileCheck{}, Credentials: []LinkCheck{}, Problems: []string{}}
	files := map[string]bool{}
	var order []string
	addFile := func(f string) {
		if !files[f] {
			files[f] = true
			order = append(order, f)
		}
	}
	for _, c := range creds {
		link := LinkCheck{Credential: c.ID, Runbook: c.Ref}
		if strings.TrimSpace(c.Ref) == "" {
			p := fmt.Sprintf("credential %s links no runbook", c.ID)
			link.Problem = &p
			res.Problems = append(res.Problems, p)
			res.Credentials = append(res.Credentials, link)
			continue
		}
		ref, err := Resolve(base, c.Ref)
		if ref.File != "" {
			f := ref.File
			link.File = &f
			addFile(ref.File)
		}
		if err != nil {
			p := fmt.Sprintf("credential %s: runbook %s: %v", c.ID, c.Ref, err)
			link.Problem = &p
			res.Problems = append(res.Problems, p)
		}
		res.Credentials = append(res.Credentials, link)
	}
	for _, dir := range dirs {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return res, &DirError{Dir: dir, Err: err}
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
				rc.Problems = append(rc.Problems, fmt.Sprintf("id %q is also the id of %s", rc.ID, DisplayPath(other)))
			} else {
				ids[rc.ID] = f
			}
		}
		for _, p := range rc.Problems {
			res.Problems = append(res.Problems, DisplayPath(f)+": "+p)
		}
		rc.File = DisplayPath(f)
		res.Runbooks = append(res.Runbooks, rc)
	}
	return res, nil
}

func checkRunbookFile(file string, maxAge time.Duration, now time.Time) FileCheck {
	rc := FileCheck{File: file, Problems: []string{}}
	data, err := os.ReadFile(file)
	if err != nil {
		rc.Problems = append(rc.Problems, fmt.Sprintf("cannot read it: %v", err))
		return rc
	}
	rc.Digest = Digest(data)
	fm, err := FrontMatter(data)
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

// DisplayPath shows a file relative to the working directory when it is
// inside it.
func DisplayPath(file string) string {
	wd, err := os.Getwd()
	if err != nil {
		return file
	}
	if rel, err := filepath.Rel(wd, file); err == nil && !strings.HasPrefix(rel, "..") {
		return rel
	}
	return file
}

// DirError is returned by Check for a directory to scan that cannot be read.
type DirError struct {
	Dir string
	Err error
}

func (e *DirError) Error() string { return fmt.Sprintf("--dir %s: %v", e.Dir, e.Err) }

// Unwrap returns the read error.
func (e *DirError) Unwrap() error { return e.Err }
