package report

import (
	"bufio"
	"fmt"
	"strings"
	"time"
)

// Chart geometry (SVG user units; the SVGs scale to their container).
const (
	chartW, chartH         = 480, 200
	padL, padR, padT, padB = 40, 10, 12, 34
)

const (
	colorOK   = "#1a7f37"
	colorWarn = "#9a6700"
	colorBad  = "#cf222e"
	colorInfo = "#0969da"
	colorIdle = "#8c959f"
	colorGrid = "#d1d9e0"
)

// ageBar is the inline bar of one credential's age as a fraction of its
// max age: green, amber from the expiring threshold, red past max age; the
// tick marks max age.
func ageBar(frac *float64, expiringAt float64) string {
	if frac == nil {
		return `<svg width="64" height="10" viewBox="0 0 64 10" role="img" aria-label="age unknown"><rect width="64" height="10" rx="2" fill="#eaeef2"/></svg>`
	}
	f := *frac
	color := colorOK
	switch {
	case f > 1:
		color = colorBad
	case f >= expiringAt:
		color = colorWarn
	}
	// 0..1.25 of max age spans the bar; max age sits at 80%.
	width := min(f/1.25, 1) * 64
	return fmt.Sprintf(`<svg width="64" height="10" viewBox="0 0 64 10" role="img" aria-label="%.0f%% of max age"><rect width="64" height="10" rx="2" fill="#eaeef2"/><rect width="%.1f" height="10" rx="2" fill="%s"/><line x1="51.2" y1="0" x2="51.2" y2="10" stroke="#59636e" stroke-width="1"/></svg>`,
		f*100, width, color)
}

func svgOpen(w *bufio.Writer, label string) {
	fmt.Fprintf(w, `<svg viewBox="0 0 %d %d" width="100%%" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg"><title>%s</title>`,
		chartW, chartH, esc(label), esc(label))
}

// axes draws the horizontal grid and y labels for values 0..maxY.
func axes(w *bufio.Writer, maxY float64, format func(float64) string) {
	plotH := float64(chartH - padT - padB)
	for i := 0; i <= 4; i++ {
		v := maxY * float64(i) / 4
		y := float64(chartH-padB) - plotH*float64(i)/4
		fmt.Fprintf(w, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s" stroke-width="0.5"/>`, padL, y, chartW-padR, y, colorGrid)
		fmt.Fprintf(w, `<text x="%d" y="%.1f" text-anchor="end">%s</text>`, padL-4, y+4, esc(format(v)))
	}
}

func niceMax(n int) float64 {
	if n <= 4 {
		return 4
	}
	step := 1
	for step*10 < n {
		step *= 10
	}
	for _, m := range []int{1, 2, 5, 10} {
		if step*m*4 >= n {
			return float64(step * m * 4)
		}
	}
	return float64(n)
}

// ageChart is the histogram of credentials by age as a fraction of max age.
func ageChart(w *bufio.Writer, s *Summary) {
	fmt.Fprint(w, "<figure>\n<h3>Credential age as a fraction of max age</h3>\n")
	svgOpen(w, "Histogram of credentials by age as a fraction of their max age")
	counts := append(append([]int{}, s.AgeHistogram...), s.NoAge)
	maxN := 0
	for _, n := range counts {
		maxN = max(maxN, n)
	}
	maxY := niceMax(maxN)
	axes(w, maxY, func(v float64) string { return fmt.Sprintf("%.0f", v) })
	plotW := float64(chartW - padL - padR)
	plotH := float64(chartH - padT - padB)
	slot := plotW / float64(len(counts))
	labels := []string{"≤25%", "≤50%", "≤75%", "≤90%", "≤100%", ">100%", "unknown"}
	colors := []string{colorOK, colorOK, colorOK, colorWarn, colorWarn, colorBad, colorIdle}
	for i, n := range counts {
		h := plotH * float64(n) / maxY
		x := float64(padL) + slot*float64(i) + slot*0.15
		y := float64(chartH-padB) - h
		fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %d</title></rect>`, x, y, slot*0.7, h, colors[i], labels[i], n)
		if n > 0 {
			fmt.Fprintf(w, `<text x="%.1f" y="%.1f" text-anchor="middle">%d</text>`, x+slot*0.35, y-3, n)
		}
		fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, x+slot*0.35, chartH-padB+14, labels[i])
	}
	fmt.Fprint(w, "</svg>\n<figcaption>Credentials by the share of their max age (or provider lifetime) their current value has used. Amber from the expiring threshold, red past max age.</figcaption>\n</figure>\n")
}

// bucketLabel formats a timeline bucket's start for its width.
func bucketLabel(t time.Time, width int64) string {
	if width < 24*3600 {
		return t.Format("01-02 15h")
	}
	return t.Format("01-02")
}

// xLabels writes up to six labels under the timeline.
func xLabels(w *bufio.Writer, s *Summary, slot float64) {
	n := len(s.Timeline)
	every := max(1, (n+5)/6)
	for i := 0; i < n; i += every {
		x := float64(padL) + slot*(float64(i)+0.5)
		fmt.Fprintf(w, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`, x, chartH-padB+14, bucketLabel(s.Timeline[i].Start, s.BucketSeconds))
	}
}

// timelineChart stacks each bucket's runs by outcome and marks emergencies.
func timelineChart(w *bufio.Writer, s *Summary) {
	fmt.Fprint(w, "<figure>\n<h3>Rotation timeline</h3>\n")
	svgOpen(w, "Runs per interval, stacked by outcome, with emergency rotations marked")
	maxN := 0
	for _, b := range s.Timeline {
		maxN = max(maxN, b.Total())
	}
	maxY := niceMax(maxN)
	axes(w, maxY, func(v float64) string { return fmt.Sprintf("%.0f", v) })
	plotW := float64(chartW - padL - padR)
	plotH := float64(chartH - padT - padB)
	slot := plotW / float64(max(len(s.Timeline), 1))
	for i, b := range s.Timeline {
		x := float64(padL) + slot*float64(i) + slot*0.1
		y := float64(chartH - padB)
		for _, part := range []struct {
			n     int
			color string
			what  string
		}{{b.Succeeded, colorOK, "succeeded"}, {b.RolledBack, colorWarn, "rolled back"}, {b.Failed, colorBad, "failed"}, {b.InProgress, colorInfo, "in progress"}} {
			if part.n == 0 {
				continue
			}
			h := plotH * float64(part.n) / maxY
			y -= h
			fmt.Fprintf(w, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s: %d %s</title></rect>`,
				x, y, slot*0.8, h, part.color, bucketLabel(b.Start, s.BucketSeconds), part.n, part.what)
		}
		if b.Emergency > 0 {
			cx := x + slot*0.4
			fmt.Fprintf(w, `<path d="M%.1f %.1f l4 -7 l-8 0 z" fill="%s"><title>%s: %d emergency rotation(s)</title></path>`,
				cx, y-2, colorBad, bucketLabel(b.Start, s.BucketSeconds), b.Emergency)
		}
	}
	xLabels(w, s, slot)
	legend(w, []string{colorOK, colorWarn, colorBad, colorInfo}, []string{"succeeded", "rolled back", "failed", "in progress"})
	fmt.Fprint(w, "</svg>\n<figcaption>Runs created per interval, by outcome; ▼ marks emergency rotations.</figcaption>\n</figure>\n")
}

func legend(w *bufio.Writer, colors, labels []string) {
	x := padL
	for i, c := range colors {
		fmt.Fprintf(w, `<rect x="%d" y="%d" width="9" height="9" fill="%s"/><text x="%d" y="%d">%s</text>`, x, chartH-12, c, x+12, chartH-4, esc(labels[i]))
		x += 14 + 7*len(labels[i]) + 10
	}
}

// successChart plots the success rate of finished runs per interval;
// intervals without finished runs leave a gap.
func successChart(w *bufio.Writer, s *Summary) {
	fmt.Fprint(w, "<figure>\n<h3>Success rate over time</h3>\n")
	svgOpen(w, "Share of finished runs that succeeded, per interval")
	axes(w, 1, func(v float64) string { return fmt.Sprintf("%.0f%%", v*100) })
	plotW := float64(chartW - padL - padR)
	plotH := float64(chartH - padT - padB)
	slot := plotW / float64(max(len(s.Timeline), 1))
	var seg []string
	flush := func() {
		if len(seg) > 1 {
			fmt.Fprintf(w, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`, strings.Join(seg, " "), colorInfo)
		}
		seg = seg[:0]
	}
	for i, b := range s.Timeline {
		if b.SuccessRate == nil {
			flush()
			continue
		}
		x := float64(padL) + slot*(float64(i)+0.5)
		y := float64(chartH-padB) - plotH**b.SuccessRate
		seg = append(seg, fmt.Sprintf("%.1f,%.1f", x, y))
		color := colorOK
		if *b.SuccessRate < 1 {
			color = colorWarn
		}
		if *b.SuccessRate < 0.9 {
			color = colorBad
		}
		fmt.Fprintf(w, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"><title>%s: %.1f%% of %d finished</title></circle>`,
			x, y, color, bucketLabel(b.Start, s.BucketSeconds), *b.SuccessRate*100, b.Succeeded+b.RolledBack+b.Failed)
	}
	flush()
	xLabels(w, s, slot)
	fmt.Fprint(w, "</svg>\n<figcaption>Share of the runs finished in each interval that succeeded (rolled back and failed runs count against it).</figcaption>\n</figure>\n")
}
