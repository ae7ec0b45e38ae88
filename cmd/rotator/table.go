package main

import (
	"io"
	"slices"
	"strings"
	"unicode/utf8"
)

// column is one column of a table.
type column struct {
	name string
	// wide columns are shown only with -o wide.
	wide bool
	// flex columns are the ones truncated first to fit the terminal; the
	// others keep their width unless nothing else would fit.
	flex bool
	// id marks the column -q prints (default: the first).
	id bool
	// colour returns an SGR colour for a cell ("" for none), used on a
	// terminal unless NO_COLOR is set.
	colour func(cell string) string
}

// table prints aligned columns. Rows are buffered until flush, which sizes
// the columns to the rows it has (a streaming caller flushes every few
// hundred rows). With a width (a terminal, or COLUMNS set) the cells of
// flexible columns are cut with an ellipsis so that each line fits; -o wide
// shows every column in full, --no-headers drops the header row and -q
// prints only the id column.
type table struct {
	w         io.Writer
	cols      []column
	rows      [][]string
	width     int
	wide      bool
	noHeaders bool
	quiet     bool
	colour    bool
	headed    bool
}

// columnGap separates columns.
const columnGap = "  "

// newListTable returns the table of a list command, shaped by its output
// flags and by the terminal.
func (a *app) newListTable(lo listOutput, cols ...column) *table {
	t := &table{w: a.stdout, cols: cols, width: a.term.width, colour: a.term.colour,
		wide: lo.format == formatWide, noHeaders: lo.noHeaders, quiet: lo.quiet}
	if t.wide {
		t.width = 0
	}
	return t
}

// newTextTable returns a table inside a command's text output (the steps of
// a run, the versions of a credential): fitted to the terminal, always
// with headers.
func (a *app) newTextTable(cols ...column) *table {
	return &table{w: a.stdout, cols: cols, width: a.term.width, colour: a.term.colour}
}

// newTable returns a plain table of the named columns: aligned, never
// truncated, never coloured.
func newTable(w io.Writer, headers ...string) *table {
	cols := make([]column, len(headers))
	for i, h := range headers {
		cols[i] = column{name: h}
	}
	return &table{w: w, cols: cols}
}

// row adds a row: one cell per column, wide ones included.
func (t *table) row(cells ...string) { t.rows = append(t.rows, cells) }

// flush writes the buffered rows.
func (t *table) flush() error {
	rows := t.rows
	t.rows = t.rows[:0]
	if t.quiet {
		id := 0
		for i, c := range t.cols {
			if c.id {
				id = i
			}
		}
		var b strings.Builder
		for _, r := range rows {
			if id < len(r) {
				b.WriteString(r[id])
				b.WriteByte('\n')
			}
		}
		_, err := io.WriteString(t.w, b.String())
		return err
	}
	var show []int
	for i, c := range t.cols {
		if !c.wide || t.wide {
			show = append(show, i)
		}
	}
	var lines [][]string
	header := !t.headed && !t.noHeaders
	if header {
		h := make([]string, len(show))
		for j, i := range show {
			h[j] = t.cols[i].name
		}
		lines = append(lines, h)
	}
	t.headed = true
	for _, r := range rows {
		l := make([]string, len(show))
		for j, i := range show {
			if i < len(r) {
				l[j] = oneLine(r[i])
			}
		}
		lines = append(lines, l)
	}
	if len(lines) == 0 {
		return nil
	}
	natural := make([]int, len(show))
	flex := make([]bool, len(show))
	for j, i := range show {
		flex[j] = t.cols[i].flex
		for _, l := range lines {
			natural[j] = max(natural[j], utf8.RuneCountInString(l[j]))
		}
	}
	widths := natural
	if t.width > 0 {
		widths = fitWidths(natural, flex, t.width-len(columnGap)*(len(show)-1))
	}
	var b strings.Builder
	for n, l := range lines {
		var sb strings.Builder
		for j, cell := range l {
			cell = ellipsis(cell, widths[j])
			pad := widths[j] - utf8.RuneCountInString(cell)
			if c := t.cols[show[j]].colour; c != nil && t.colour && !(header && n == 0) {
				cell = paint(true, c(cell), cell)
			}
			if j > 0 {
				sb.WriteString(columnGap)
			}
			sb.WriteString(cell)
			if j < len(l)-1 {
				sb.WriteString(strings.Repeat(" ", pad))
			}
		}
		b.WriteString(strings.TrimRight(sb.String(), " "))
		b.WriteByte('\n')
	}
	_, err := io.WriteString(t.w, b.String())
	return err
}

// oneLine keeps a cell on one line.
func oneLine(s string) string {
	if !strings.ContainsAny(s, "\t\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}

// ellipsis cuts s to at most w characters, the last of them "…".
func ellipsis(s string, w int) string {
	if utf8.RuneCountInString(s) <= w {
		return s
	}
	if w <= 0 {
		return ""
	}
	r := []rune(s)
	return string(r[:w-1]) + "…"
}

// minFlexWidth is the narrowest a flexible column is cut to before the
// other columns give way too.
const minFlexWidth = 6

// fitWidths returns column widths that sum to at most avail: unchanged when
// they fit; else the flexible columns are narrowed, widest first, down to a
// common cap; and when that would leave them under minFlexWidth, every
// column is narrowed the same way. Each column keeps at least 1 character.
func fitWidths(natural []int, flex []bool, avail int) []int {
	w := slices.Clone(natural)
	total := 0
	for _, n := range w {
		total += n
	}
	if total <= avail {
		return w
	}
	var flexIdx, all []int
	fixed := 0
	for i := range w {
		all = append(all, i)
		if flex[i] {
			flexIdx = append(flexIdx, i)
		} else {
			fixed += w[i]
		}
	}
	if len(flexIdx) > 0 && avail-fixed >= minFlexWidth*len(flexIdx) {
		waterFill(w, flexIdx, avail-fixed)
		return w
	}
	waterFill(w, all, avail)
	return w
}

// waterFill narrows the columns idx of w so that they sum to at most budget:
// columns narrower than an even share keep their width, the others are cut
// to a common cap (the widest getting the odd characters left over).
func waterFill(w []int, idx []int, budget int) {
	idx = slices.Clone(idx)
	slices.SortStableFunc(idx, func(a, b int) int { return w[a] - w[b] })
	left := budget
	for k, i := range idx {
		rest := idx[k:]
		share := left / len(rest)
		if w[i] <= share {
			left -= w[i]
			continue
		}
		extra := left - share*len(rest)
		for j, c := range rest {
			limit := share
			if j >= len(rest)-extra {
				limit++
			}
			w[c] = max(1, min(w[c], limit))
		}
		return
	}
}
