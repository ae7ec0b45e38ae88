package scan

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// addedLines are the lines a diff adds to one file: line number (in the
// new file) to text.
type addedLines map[int]string

// ParseDiff reads a unified diff (git diff, git diff --cached) and returns
// the added lines per file (paths as in "+++ b/PATH").
func ParseDiff(r io.Reader) (map[string]addedLines, []string, error) {
	files := map[string]addedLines{}
	var order []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16<<20)
	var cur addedLines
	line := 0
	for n := 1; sc.Scan(); n++ {
		t := sc.Text()
		switch {
		case strings.HasPrefix(t, "+++ "):
			p := strings.TrimPrefix(t, "+++ ")
			if i := strings.IndexByte(p, '\t'); i >= 0 {
				p = p[:i]
			}
			if p == "/dev/null" {
				cur = nil
				continue
			}
			p = strings.TrimPrefix(p, "b/")
			if uq, err := strconv.Unquote(p); err == nil {
				p = strings.TrimPrefix(uq, "b/")
			}
			if files[p] == nil {
				files[p] = addedLines{}
				order = append(order, p)
			}
			cur = files[p]
		case strings.HasPrefix(t, "--- "), strings.HasPrefix(t, "diff "), strings.HasPrefix(t, "index "):
		case strings.HasPrefix(t, "@@"):
			// @@ -a,b +c,d @@
			f := strings.Fields(t)
			if len(f) < 3 || !strings.HasPrefix(f[2], "+") {
				return nil, nil, fmt.Errorf("diff line %d: hunk header %q: want '@@ -A,B +C,D @@'", n, t)
			}
			s, _, _ := strings.Cut(f[2][1:], ",")
			v, err := strconv.Atoi(s)
			if err != nil {
				return nil, nil, fmt.Errorf("diff line %d: hunk header %q: want '@@ -A,B +C,D @@'", n, t)
			}
			line = v
		case cur == nil:
		case strings.HasPrefix(t, "+"):
			cur[line] = t[1:]
			line++
		case strings.HasPrefix(t, " "):
			line++
		}
	}
	if err := sc.Err(); err != nil {
		return nil, nil, fmt.Errorf("reading the diff: %w", err)
	}
	return files, order, nil
}

// ScanDiff scans the lines a diff adds. A file that exists under root is
// scanned whole (so that its structure is understood) and its findings on
// added lines are kept; added lines that the file on disk does not hold
// (or all, for a file that is not there) are scanned on their own.
func ScanDiff(ctx context.Context, r io.Reader, root string, opts Options) (*Result, error) {
	files, order, err := ParseDiff(r)
	if err != nil {
		return nil, err
	}
	if opts.MaxFileSize <= 0 {
		opts.MaxFileSize = DefaultMaxFileSize
	}
	res := &Result{}
	for _, p := range order {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		added := files[p]
		if len(added) == 0 || strings.HasPrefix(p, ".git/") {
			continue
		}
		path := filepath.Join(root, filepath.FromSlash(p))
		rest := map[int]string{}
		for k, v := range added {
			rest[k] = v
		}
		if st, err := os.Stat(path); err == nil && st.Mode().IsRegular() {
			fs, skip := scanFile(path, opts.MaxFileSize)
			switch skip {
			case skipBinary:
				res.Skipped.Binary++
				continue
			case skipLarge:
				res.Skipped.TooLarge++
				continue
			case skipNone:
				content, _ := os.ReadFile(path)
				lines := strings.Split(string(content), "\n")
				for k, v := range added {
					if k-1 < len(lines) && strings.TrimRight(lines[k-1], "\r") == strings.TrimRight(v, "\r") {
						delete(rest, k)
					}
				}
				for _, f := range fs {
					if _, ok := added[f.Line]; ok {
						if _, mismatch := rest[f.Line]; !mismatch {
							f.File = p
							res.Findings = append(res.Findings, f)
						}
					}
				}
			}
		}
		res.Files++
		if len(rest) == 0 {
			continue
		}
		// Lines only the diff holds: scan them alone, in order.
		nums := make([]int, 0, len(rest))
		for k := range rest {
			nums = append(nums, k)
		}
		sort.Ints(nums)
		var sb strings.Builder
		for _, k := range nums {
			sb.WriteString(rest[k])
			sb.WriteByte('\n')
		}
		for _, f := range Bytes(p, []byte(sb.String())) {
			f.Line = nums[f.Line-1]
			res.Findings = append(res.Findings, f)
		}
	}
	SortFindings(res.Findings)
	return res, nil
}
