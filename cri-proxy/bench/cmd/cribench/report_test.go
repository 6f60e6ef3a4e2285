package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/pod-networks/pkg/criinfo"
)

func TestRatioCheck(t *testing.T) {
	for _, tc := range []struct {
		got, max, goal float64
		limit, verdict string
	}{
		{1.01, 1.03, 0, "≤ 1.03", "PASS"},
		{1.03, 1.03, 0, "≤ 1.03", "PASS"},
		{1.04, 1.03, 0, "≤ 1.03", "FAIL"},
		{1.04, 1.20, 1.05, "≤ 1.20 (goal 1.05)", "PASS"},
		{1.10, 1.20, 1.05, "≤ 1.20 (goal 1.05)", "PASS (goal missed)"},
		{1.30, 1.20, 1.05, "≤ 1.20 (goal 1.05)", "FAIL"},
	} {
		c := ratioCheck("x", tc.got, tc.max, tc.goal)
		if c.limit != tc.limit || c.verdict() != tc.verdict {
			t.Errorf("ratioCheck(%v, %v, %v) = %q %s, want %q %s", tc.got, tc.max, tc.goal, c.limit, c.verdict(), tc.limit, tc.verdict)
		}
	}
}

func TestReport(t *testing.T) {
	paths := []path{{name: "direct"}, {name: "anchor"}, {name: "cri-proxy"}}
	s := samples{rpc: "Version", size: 31, samples: [][]time.Duration{
		{100 * time.Microsecond, 110 * time.Microsecond, 90 * time.Microsecond},
		{200 * time.Microsecond, 210 * time.Microsecond, 190 * time.Microsecond},
		{205 * time.Microsecond, 215 * time.Microsecond, 195 * time.Microsecond},
	}}
	rep := &report{
		header:  []string{"cribench"},
		latency: latencyRows(paths, s),
		checks:  []check{ratioCheck("Version: cri-proxy / anchor", 1.025, 1.03, 0)},
		notes:   []string{"a note"},
	}
	if !rep.passed() {
		t.Error("passed() = false with every check met")
	}
	var b bytes.Buffer
	rep.print(&b)
	out := b.String()
	for _, want := range []string{
		"Version, 31 B", "100 µs", "2.000", "+100 µs", "205 µs", "2.050", "+105 µs",
		"Version: cri-proxy / anchor", "1.025", "≤ 1.03", "PASS", "a note",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	lines := strings.Split(out, "\n")
	var direct, proxied string
	for _, l := range lines {
		switch {
		case strings.Contains(l, "direct"):
			direct = l
		case strings.Contains(l, "cri-proxy") && strings.Contains(l, "µs"):
			proxied = l
		}
	}
	if strings.Index(direct, "100 µs") != strings.Index(proxied, "205 µs") {
		t.Errorf("medians not aligned:\n%s\n%s", direct, proxied)
	}
	rep.checks = append(rep.checks, check{what: "memory", ok: false})
	if rep.passed() {
		t.Error("passed() = true with a check missed")
	}
}

func TestByteSize(t *testing.T) {
	for n, want := range map[int]string{31: "31 B", 1023: "1023 B", 115 << 10: "115 KiB", 1029 << 10: "1029 KiB"} {
		if got := byteSize(n); got != want {
			t.Errorf("byteSize(%d) = %q, want %q", n, got, want)
		}
	}
}

// The fake runtime's verbose sandbox info is what the proxy reads.
func TestSandboxInfo(t *testing.T) {
	got, err := criinfo.NetNSPath(sandboxInfo("/run/netns/x"))
	if err != nil || got != "/run/netns/x" {
		t.Errorf("NetNSPath(sandboxInfo) = %q, %v", got, err)
	}
}
