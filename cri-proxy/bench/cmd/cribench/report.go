package main

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// result is one line of the report: the median of a baseline (a direct
// call) and of what is measured (the same call through the proxy), and
// the median of the ratios of runs made one after the other, which
// cancels slow drifts of the machine (0 when runs are not paired).
type result struct {
	name     string
	baseline time.Duration
	measured time.Duration
	paired   float64
	target   target
}

// target is what a result must meet.
type target struct {
	desc string
	met  func(result) bool
}

// ratioAtMost judges the ratio of the medians.
func ratioAtMost(max float64) target {
	return target{desc: fmt.Sprintf("ratio ≤ %.2f", max), met: func(r result) bool { return r.ratio() <= max }}
}

// addedAtMostBaseline: the proxy adds at most one direct call's latency.
var addedAtMostBaseline = target{desc: "added ≤ baseline", met: func(r result) bool { return r.measured-r.baseline <= r.baseline }}

func (r result) ratio() float64 { return float64(r.measured) / float64(r.baseline) }

// maxRSS is the proxy's resident memory target after the run.
const maxRSS = 40 << 20

// report is every result and the proxy's resident memory after them.
type report struct {
	results []result
	rss     int64
}

func (rep *report) passed() bool {
	for _, r := range rep.results {
		if !r.target.met(r) {
			return false
		}
	}
	return rep.rss < maxRSS
}

func (rep *report) print(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RPC\tbaseline (direct)\tmeasured (proxied)\tratio\tpaired ratio\tadded\ttarget\t")
	for _, r := range rep.results {
		paired := "-"
		if r.paired > 0 {
			paired = fmt.Sprintf("%.3f", r.paired)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%.3f\t%s\t%s\t%s\t%s\n", r.name, us(r.baseline), us(r.measured), r.ratio(), paired,
			us(r.measured-r.baseline), r.target.desc, verdict(r.target.met(r)))
	}
	fmt.Fprintf(tw, "proxy VmRSS after run\t\t%.1f MiB\t\t\t\t< %d MiB\t%s\n", float64(rep.rss)/(1<<20), maxRSS>>20, verdict(rep.rss < maxRSS))
	tw.Flush()
}

func us(d time.Duration) string { return fmt.Sprintf("%d µs", d.Microseconds()) }

func verdict(ok bool) string {
	if ok {
		return "PASS"
	}
	return "FAIL"
}
