package config

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Error is one problem in a configuration file.
type Error struct {
	// File is the configuration file's name as given to Load or Parse.
	File string
	// Line is the 1-based line of the offending node; 0 when the problem
	// concerns the whole file.
	Line int
	// Field is the dotted path of the offending field, such as
	// credentials[2].max_age or providers.okta.client_secret; empty for
	// file-level problems.
	Field string
	// Msg says what is wrong and what would be valid. It never contains a
	// secret value.
	Msg string
}

// Error renders the problem as file:line: field: msg.
func (e Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Field != "" {
		b.WriteString(e.Field)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in a configuration file. Load and Parse
// return it (as *Errors) when the file is invalid.
type Errors struct {
	// List holds the problems sorted by line.
	List []Error
}

// Error renders one problem per line, sorted by line.
func (e *Errors) Error() string {
	lines := make([]string, len(e.List))
	for i, x := range e.List {
		lines[i] = x.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the individual problems, so errors.As can find an Error.
func (e *Errors) Unwrap() []error {
	out := make([]error, len(e.List))
	for i, x := range e.List {
		out[i] = x
	}
	return out
}

// sortErrors orders errors by line, then field, then message, and drops
// exact duplicates (an aliased node reached twice).
func sortErrors(list []Error) []Error {
	slices.SortStableFunc(list, func(a, b Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Field, b.Field), cmp.Compare(a.Msg, b.Msg))
	})
	return slices.CompactFunc(list, func(a, b Error) bool { return a == b })
}

// quoteList renders names for "valid keys are ..." messages.
func quoteList(names []string) string {
	if len(names) == 0 {
		return "(none)"
	}
	return strings.Join(names, ", ")
}

func errorf(file string, line int, field, format string, args ...any) Error {
	return Error{File: file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
}
