package main

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// report prints, per arm, the spread of the start-up latency and what each
// network adds to it, then where the time goes.
func report(samples []sample, arms []int) {
	by := map[int][]sample{}
	for _, s := range samples {
		by[s.networks] = append(by[s.networks], s)
	}
	arms = slices.Sorted(slices.Values(arms))
	col := func(n int, f func(sample) time.Duration) []time.Duration {
		var out []time.Duration
		for _, s := range by[n] {
			out = append(out, f(s))
		}
		return out
	}
	total := func(s sample) time.Duration { return s.total }
	rps := func(s sample) time.Duration { return seconds(s.proxy.runSandbox.sum) }
	perNetwork := func(n int, f func(sample) time.Duration) string {
		if n == 0 {
			return "-"
		}
		return fmt.Sprintf("%+.1f", msOf((median(col(n, f))-median(col(0, f)))/time.Duration(n)))
	}

	fmt.Printf("\npod create call returned -> pod Ready seen by the watch (client clock), %d pods per arm, ms:\n", len(by[0]))
	fmt.Printf("  %8s %7s %7s %7s %7s %10s %14s\n", "networks", "min", "median", "p90", "max", "÷ 0-net", "added/network")
	base := median(col(0, total))
	for _, n := range arms {
		t := col(n, total)
		fmt.Printf("  %8d %7.0f %7.0f %7.0f %7.0f %10.2f %14s\n", n, msOf(slices.Min(t)), msOf(median(t)), msOf(quantile(t, 0.9)),
			msOf(slices.Max(t)), float64(median(t))/float64(base), perNetwork(n, total))
	}

	fmt.Println("\nwhere the time goes, per-pod medians, ms (the medians need not add up):")
	fmt.Println("  bound: create call returned -> pod seen bound by the watch (scheduler)")
	fmt.Println("  RunPodSandbox: kubelet's call through the CRI proxy: containerd's sandbox and primary network, then the proxy's attaches")
	fmt.Println("  CNI ADD: the pod's ADDs (bridge + host-local) summed over its networks; they run 4 at a time")
	fmt.Println("  containers: CreateContainer + StartContainer; rest: total - the others: kubelet's own work and status write,")
	fmt.Println("  mostly its volume manager's wait for the service-account token volume (checked every 300 ms) before the sandbox")
	fmt.Printf("  %8s %7s %14s %10s %9s %9s %10s %7s %13s\n", "networks", "bound", "RunPodSandbox", "/network", "CNI ADD", "per ADD", "containers", "rest", "rest min-max")
	for _, n := range arms {
		rest := col(n, func(s sample) time.Duration {
			return s.total - s.bound - seconds(s.proxy.runSandbox.sum+s.proxy.createContainer.sum+s.proxy.startContainer.sum)
		})
		add, perADD := "-", "-"
		if n > 0 {
			add = fmt.Sprintf("%.0f", msOf(median(col(n, func(s sample) time.Duration { return seconds(s.proxy.attach.sum) }))))
			perADD = fmt.Sprintf("%.1f", msOf(median(col(n, func(s sample) time.Duration {
				return seconds(s.proxy.attach.sum / float64(max(s.proxy.attach.count, 1)))
			}))))
		}
		fmt.Printf("  %8d %7.0f %14.0f %10s %9s %9s %10.0f %7.0f %13s\n", n,
			msOf(median(col(n, func(s sample) time.Duration { return s.bound }))),
			msOf(median(col(n, rps))), perNetwork(n, rps), add, perADD,
			msOf(median(col(n, func(s sample) time.Duration {
				return seconds(s.proxy.createContainer.sum + s.proxy.startContainer.sum)
			}))),
			msOf(median(rest)), fmt.Sprintf("%.0f-%.0f", msOf(slices.Min(rest)), msOf(slices.Max(rest))))
	}
}

// anomalies lists the measurements that were not one clean start-up: a
// sandbox or container the runtime made more than once (kubelet retried
// after a failure), or an ADD that failed or is missing.
func anomalies(samples []sample) []string {
	var out []string
	for _, s := range samples {
		p := s.proxy
		var what []string
		if p.runSandbox.count != 1 || p.createContainer.count != 1 || p.startContainer.count != 1 {
			what = append(what, fmt.Sprintf("%d RunPodSandbox, %d CreateContainer, %d StartContainer calls, want 1 each",
				p.runSandbox.count, p.createContainer.count, p.startContainer.count))
		}
		if p.attach.count != uint64(s.networks) {
			what = append(what, fmt.Sprintf("%d CNI ADDs for %d networks", p.attach.count, s.networks))
		}
		if p.attachFailures > 0 {
			what = append(what, fmt.Sprintf("%.0f failed ADDs", p.attachFailures))
		}
		if len(what) > 0 {
			out = append(out, fmt.Sprintf("pod %s: %s", s.name, strings.Join(what, "; ")))
		}
	}
	return out
}

// median is the middle value, or the mean of the middle two.
func median(d []time.Duration) time.Duration {
	s := slices.Sorted(slices.Values(d))
	if len(s) == 0 {
		return 0
	}
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// quantile is the nearest-rank q-quantile.
func quantile(d []time.Duration, q float64) time.Duration {
	s := slices.Sorted(slices.Values(d))
	if len(s) == 0 {
		return 0
	}
	return s[max(int(math.Ceil(q*float64(len(s))))-1, 0)]
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func msOf(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", msOf(d)) }

func joinInts(v []int, sep string) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, sep)
}
