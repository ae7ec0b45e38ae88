package scan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"sync"
)

// DefaultMaxFileSize is the size above which a file is skipped (and
// counted): configurations and sources are far smaller; larger files are
// data, logs and bundles.
const DefaultMaxFileSize = 2 << 20

// Options configure a scan.
type Options struct {
	// MaxFileSize skips larger files; 0 means DefaultMaxFileSize.
	MaxFileSize int64
	// Workers is how many files are read and scanned at once; 0 means
	// GOMAXPROCS.
	Workers int
}

// Skipped counts what a scan did not read.
type Skipped struct {
	Binary     int `json:"binary"`
	TooLarge   int `json:"too_large"`
	GitDirs    int `json:"git_dirs"`
	Unreadable int `json:"unreadable"`
}

// Result is the outcome of a scan.
type Result struct {
	Findings []Finding `json:"findings"`
	Files    int       `json:"files"`
	Skipped  Skipped   `json:"skipped"`
}

// Scan walks paths (files or directories) and scans every regular file in
// parallel. Directories named .git are skipped, as are binary files and
// files over the size limit; all are counted. A path that does not exist is
// an error.
func Scan(ctx context.Context, paths []string, opts Options) (*Result, error) {
	if opts.MaxFileSize <= 0 {
		opts.MaxFileSize = DefaultMaxFileSize
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	for _, p := range paths {
		if _, err := os.Lstat(p); err != nil {
			return nil, fmt.Errorf("scan %s: %w", p, err)
		}
	}
	files := make(chan string, 64)
	var (
		mu  sync.Mutex
		res Result
		wg  sync.WaitGroup
	)
	for range opts.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for path := range files {
				fs, skip := scanFile(path, opts.MaxFileSize)
				mu.Lock()
				switch skip {
				case skipNone:
					res.Files++
					res.Findings = append(res.Findings, fs...)
				case skipBinary:
					res.Skipped.Binary++
				case skipLarge:
					res.Skipped.TooLarge++
				case skipUnreadable:
					res.Skipped.Unreadable++
				}
				mu.Unlock()
			}
		}()
	}
	var walkErr error
	for _, root := range paths {
		err := filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				mu.Lock()
				res.Skipped.Unreadable++
				mu.Unlock()
				if e != nil && e.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if e.IsDir() {
				if e.Name() == ".git" {
					mu.Lock()
					res.Skipped.GitDirs++
					mu.Unlock()
					return fs.SkipDir
				}
				return nil
			}
			if !e.Type().IsRegular() {
				return nil
			}
			files <- path
			return nil
		})
		if err != nil {
			walkErr = err
			break
		}
	}
	close(files)
	wg.Wait()
	if walkErr != nil {
		return nil, walkErr
	}
	SortFindings(res.Findings)
	return &res, nil
}

// SortFindings orders findings by file, line and column.
func SortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		a, b := fs[i], fs[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

type skipReason int

const (
	skipNone skipReason = iota
	skipBinary
	skipLarge
	skipUnreadable
)

func scanFile(path string, maxSize int64) ([]Finding, skipReason) {
	f, err := os.Open(path)
	if err != nil {
		return nil, skipUnreadable
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, skipUnreadable
	}
	if st.Size() > maxSize {
		return nil, skipLarge
	}
	// Read the size stat gave; a file that grew since is cut there.
	b := make([]byte, st.Size())
	if _, err := io.ReadFull(f, b); err != nil {
		return nil, skipUnreadable
	}
	if isBinary(b) {
		return nil, skipBinary
	}
	return Bytes(path, b), skipNone
}

// isBinary reports whether b looks binary: a NUL byte in its first 8,000
// bytes (as git decides).
func isBinary(b []byte) bool {
	return bytes.IndexByte(b[:min(len(b), 8000)], 0) >= 0
}

// Bytes scans the content of one file named path and returns its findings
// in file order.
func Bytes(path string, b []byte) []Finding { return analyze(path, b).result() }

// analyze runs every pass over one file.
func analyze(path string, b []byte) *doc {
	d := newDoc(path, b)
	if !d.structural() {
		// Neither an MCP configuration nor a tool definition: the line
		// pass is all there is to do.
	} else if root := d.parseTree(); root != nil {
		d.structuredPass(root)
	} else if d.ext == ".json" && looksMCPByName(d.base) {
		d.mcp = true
	}
	d.linePass()
	d.sourceTools()
	return d
}

// structuralKeys are the keys that make a JSON, YAML or TOML file worth
// parsing: MCP server maps, tool schemas, registry entries.
var structuralKeys = [][]byte{[]byte("mcpservers"), []byte("servers"), []byte("mcp_servers"), []byte("context_servers"),
	[]byte("inputschema"), []byte("input_schema"), []byte("tools"), []byte("issecret"), []byte("packages"), []byte("remotes")}

func (d *doc) structural() bool {
	if looksMCPByName(d.base) || d.base == "server.json" {
		return true
	}
	for _, k := range structuralKeys {
		if bytes.Contains(d.lower, k) {
			return true
		}
	}
	return false
}

func looksMCPByName(base string) bool {
	switch base {
	case "claude_desktop_config.json", ".mcp.json", ".claude.json", "mcp.json", "mcp_config.json":
		return true
	}
	return false
}

// ErrFindings is returned (wrapped) by callers that fail on findings.
var ErrFindings = errors.New("secrets found")
