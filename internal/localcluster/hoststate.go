package localcluster

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// HostState is what a cluster may change on the host, captured so that a
// test can compare the host before Up and after Down.
type HostState struct {
	Processes []string          // the cluster's long-lived processes (pid: exe)
	Mounts    []string          // every mount point on the host
	NetNS     []string          // named network namespaces (/run/netns)
	Links     []string          // every network link
	Cgroups   []string          // top-level cgroups of every hierarchy
	IPTables  []string          // iptables-save and ip6tables-save rules, no counters
	Sysctls   map[string]string // the host-wide sysctls the cluster touches
	Paths     []string          // host paths components create that exist
}

// Snapshot captures the host state relevant to the cluster o describes.
func Snapshot(o Options) (HostState, error) {
	l := newLayout(o).adoptSaved()
	var s HostState
	for _, pid := range l.ourProcesses() {
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		if exe == o.Runc {
			continue // short-lived runc calls of a running shim are not state
		}
		s.Processes = append(s.Processes, fmt.Sprintf("%d: %s", pid, exe))
	}
	s.Mounts = mountsUnder("/")
	sort.Strings(s.Mounts)
	s.NetNS = dirNames("/run/netns")
	s.Links = dirNames("/sys/class/net")
	for _, h := range cgroupHierarchies() {
		for _, c := range dirNames(h) {
			if fi, err := os.Stat(filepath.Join(h, c)); err == nil && fi.IsDir() {
				s.Cgroups = append(s.Cgroups, filepath.Join(h, c))
			}
		}
	}
	for _, tool := range []string{"iptables-save", "ip6tables-save"} {
		out, err := exec.Command(tool).Output()
		if err != nil {
			return s, fmt.Errorf("%s: %w", tool, err)
		}
		s.IPTables = append(s.IPTables, iptablesRules(tool, string(out))...)
	}
	s.Sysctls = map[string]string{}
	for _, k := range hostSysctls {
		if v, err := readSysctl(k); err == nil {
			s.Sysctls[k] = v
		}
	}
	for _, p := range hostPaths {
		if _, err := os.Lstat(p); err == nil {
			s.Paths = append(s.Paths, p)
		}
	}
	return s, nil
}

var counters = regexp.MustCompile(`\[\d+:\d+\]`)

func iptablesRules(tool, out string) []string {
	var rules []string
	table := ""
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "#"), l == "COMMIT", l == "":
		case strings.HasPrefix(l, "*"):
			table = l[1:]
		default:
			rules = append(rules, tool+" "+table+" "+counters.ReplaceAllString(l, ""))
		}
	}
	return rules
}

func dirNames(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// Diff lists, one per line, what differs from before to s.
func (before HostState) Diff(s HostState) []string {
	var d []string
	list := func(what string, a, b []string) {
		in := func(xs []string) map[string]bool {
			m := map[string]bool{}
			for _, x := range xs {
				m[x] = true
			}
			return m
		}
		ma, mb := in(a), in(b)
		for _, x := range b {
			if !ma[x] {
				d = append(d, fmt.Sprintf("%s added: %s", what, x))
			}
		}
		for _, x := range a {
			if !mb[x] {
				d = append(d, fmt.Sprintf("%s removed: %s", what, x))
			}
		}
	}
	list("process", before.Processes, s.Processes)
	list("mount", before.Mounts, s.Mounts)
	list("netns", before.NetNS, s.NetNS)
	list("link", before.Links, s.Links)
	list("cgroup", before.Cgroups, s.Cgroups)
	list("iptables", before.IPTables, s.IPTables)
	list("path", before.Paths, s.Paths)
	for k, v := range before.Sysctls {
		if s.Sysctls[k] != v {
			d = append(d, fmt.Sprintf("sysctl %s: %s -> %s", k, v, s.Sysctls[k]))
		}
	}
	return d
}
