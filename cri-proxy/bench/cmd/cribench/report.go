package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// report is what cribench prints: a header, the latency table, the
// targets with their verdicts, and notes.
type report struct {
	header  []string
	latency []latencyRow
	checks  []check
	notes   []string
}

// latencyRow is one path's median for one call.
type latencyRow struct {
	rpc    string        // the call, on its first row only
	path   string        // "direct" or a proxy
	median time.Duration // of the path
	direct time.Duration // the direct median; 0 on the direct row
}

// latencyRows makes one row per path of s, the direct one (paths[0]) first.
func latencyRows(paths []path, s samples) []latencyRow {
	direct := median(s.samples[0])
	rows := make([]latencyRow, len(paths))
	for i, p := range paths {
		rows[i] = latencyRow{path: p.name, median: median(s.samples[i])}
		if i > 0 {
			rows[i].direct = direct
		}
	}
	rows[0].rpc = fmt.Sprintf("%s, %s", s.rpc, byteSize(s.size))
	return rows
}

// check is a target: what was measured, the limit, and whether it was met
// (and its goal, when a target has one beyond the limit).
type check struct {
	what       string
	got        string
	limit      string
	ok         bool
	goalMissed bool
}

// ratioCheck: got must be at most max; goal (0: none) is the aim.
func ratioCheck(what string, got, max, goal float64) check {
	c := check{what: what, got: fmt.Sprintf("%.3f", got), limit: fmt.Sprintf("≤ %.2f", max), ok: got <= max}
	if goal > 0 {
		c.limit += fmt.Sprintf(" (goal %.2f)", goal)
		c.goalMissed = got > goal
	}
	return c
}

func (c check) verdict() string {
	switch {
	case !c.ok:
		return "FAIL"
	case c.goalMissed:
		return "PASS (goal missed)"
	}
	return "PASS"
}

func (rep *report) passed() bool {
	for _, c := range rep.checks {
		if !c.ok {
			return false
		}
	}
	return true
}

func (rep *report) print(w io.Writer) {
	for _, h := range rep.header {
		fmt.Fprintln(w, h)
	}
	if len(rep.latency) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "call, answer size\tpath\t   median\t× direct\t     added")
		for _, r := range rep.latency {
			if r.direct == 0 {
				fmt.Fprintf(tw, "%s\t%s\t%9s\t\t\n", r.rpc, r.path, us(r.median))
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%9s\t%8.3f\t%+7d µs\n", r.rpc, r.path, us(r.median), ratio(r.median, r.direct), (r.median - r.direct).Microseconds())
		}
		tw.Flush()
	}
	if len(rep.checks) > 0 {
		fmt.Fprintln(w)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "target\tmeasured\tlimit\tverdict")
		for _, c := range rep.checks {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.what, c.got, c.limit, c.verdict())
		}
		tw.Flush()
	}
	if len(rep.notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range rep.notes {
			fmt.Fprintln(w, strings.TrimRight(n, "\n"))
		}
	}
}

func us(d time.Duration) string { return fmt.Sprintf("%d µs", d.Microseconds()) }

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

func byteSize(n int) string {
	if n < 1<<10 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
}
