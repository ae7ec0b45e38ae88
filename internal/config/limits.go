package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"go.yaml.in/yaml/v3"

	"github.com/rotatorhq/rotator/internal/bytesize"
)

// Limits on what a configuration file may hold, so that a mistaken or
// hostile file fails with a clear error instead of exhausting memory. Each
// is far above what a real inventory needs; docs/operations.md lists them.
const (
	// DefaultMaxFileSize is the largest file Load reads: 16 MiB, about
	// 38,000 credentials of 440 bytes. LoadLimit takes another limit
	// (rotator apply and serve: --max-config-size).
	DefaultMaxFileSize = 16 << 20
	// MaxValueBytes bounds every single value and mapping key: 64 KiB.
	MaxValueBytes = 64 << 10
	// MaxItems bounds every list and mapping inside a provider, a target
	// or a credential (scope, targets, settings and what they nest): 1,000
	// items. The providers, targets and credentials sections themselves
	// are bounded by the file size only.
	MaxItems = 1000
	// MaxLabels bounds the labels of one credential: 64.
	MaxLabels = 64
	// MaxAliasedValues bounds how many values aliases (*name) may add to
	// the document by repeating what an anchor (&name) names: 100,000.
	MaxAliasedValues = maxNodes
)

// FileTooLargeError is returned by Load and LoadLimit for a file over the
// size limit, before any of it is parsed.
type FileTooLargeError struct {
	// File is the file's name as given.
	File string
	// Size is how many bytes it has (at least Limit+1 if it could not be
	// measured before reading).
	Size int64
	// Limit is the largest size allowed.
	Limit int64
}

// Error names the file, its size and the limit.
func (e *FileTooLargeError) Error() string {
	return fmt.Sprintf("%s is %s (%d bytes), over the %s limit for a configuration file",
		e.File, bytesize.Format(e.Size), e.Size, bytesize.Format(e.Limit))
}

// LoadLimit is Load for a file of at most maxSize bytes (0 means
// DefaultMaxFileSize). A larger file yields *FileTooLargeError without
// being parsed. A regular file is read where it is, one credential at a
// time (see parseSplit), not copied into memory first.
func LoadLimit(path string, maxSize int64) (*Config, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxFileSize
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	defer f.Close()
	before, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading config: %w", err)
	}
	if !before.Mode().IsRegular() {
		data, err := readLimit(f, path, 0, maxSize)
		var tooLarge *FileTooLargeError
		if err != nil && !errors.As(err, &tooLarge) {
			return nil, fmt.Errorf("reading config: %w", err)
		}
		if err != nil {
			return nil, err
		}
		return Parse(path, data, loadOptions(path))
	}
	if before.Size() > maxSize {
		return nil, &FileTooLargeError{File: path, Size: before.Size(), Limit: maxSize}
	}
	cfg, err := parseFrom(path, io.NewSectionReader(f, 0, before.Size()), loadOptions(path), builtin)
	if after, serr := f.Stat(); serr == nil && (after.Size() != before.Size() || !after.ModTime().Equal(before.ModTime())) {
		return nil, fmt.Errorf("reading config: %s changed while it was read; load it again", path)
	}
	return cfg, err
}

func loadOptions(path string) Options {
	return Options{BaseDir: filepath.Dir(path), CheckRunbooks: true}
}

// ReadFile reads a configuration file of at most maxSize bytes (0 means
// DefaultMaxFileSize); a larger file yields *FileTooLargeError, an
// unreadable one the *os.PathError.
func ReadFile(path string, maxSize int64) ([]byte, error) {
	if maxSize <= 0 {
		maxSize = DefaultMaxFileSize
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size := int64(0)
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	if size > maxSize {
		return nil, &FileTooLargeError{File: path, Size: size, Limit: maxSize}
	}
	return readLimit(f, path, size, maxSize)
}

// readLimit reads r to its end, failing with *FileTooLargeError once it
// has read more than maxSize bytes; size is what stat said (0 if unknown).
func readLimit(r io.Reader, path string, size, maxSize int64) ([]byte, error) {
	// Read one byte more than allowed, so a file that grew (or a pipe) is
	// caught too. Room for the whole file at once: no copy while growing.
	buf := bytes.NewBuffer(make([]byte, 0, size+bytes.MinRead))
	if _, err := buf.ReadFrom(io.LimitReader(r, maxSize+1)); err != nil {
		return nil, err
	}
	if int64(buf.Len()) > maxSize {
		return nil, &FileTooLargeError{File: path, Size: max(size, maxSize+1), Limit: maxSize}
	}
	return buf.Bytes(), nil
}

// overLimit reports a node over MaxItems or MaxValueBytes at path, and
// whether it did. A value over the limit is never shown in any message.
func (p *parser) overLimit(n *yaml.Node, path string) bool {
	switch n.Kind {
	case yaml.MappingNode:
		if k := len(n.Content) / 2; k > MaxItems {
			p.errorf(n.Line, path, "has %d entries, over the limit of %d per mapping", k, MaxItems)
			return true
		}
	case yaml.SequenceNode:
		if k := len(n.Content); k > MaxItems {
			p.errorf(n.Line, path, "has %d items, over the limit of %d per list", k, MaxItems)
			return true
		}
	case yaml.ScalarNode:
		if k := len(n.Value); k > MaxValueBytes {
			p.suspects[n.Value] = true
			p.errorf(n.Line, path, "is %s (%d bytes) long, over the limit of %s per value", bytesize.Format(int64(k)), k, bytesize.Format(MaxValueBytes))
			return true
		}
	}
	return false
}
