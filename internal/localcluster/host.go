package localcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/sys/mountinfo"

	"sigs.k8s.io/pod-networks/internal/poll"
)

// hostSysctls are the host-wide settings the cluster changes: the bridge
// plugin's isGateway turns on forwarding; kubelet sets the kernel tunables
// it wants unless protectKernelDefaults refuses to start instead.
var hostSysctls = []string{
	"net.ipv4.ip_forward",
	"net.ipv6.conf.all.forwarding",
	"vm.overcommit_memory",
	"vm.panic_on_oom",
	"kernel.panic",
	"kernel.panic_on_oops",
	"kernel.keys.root_maxkeys",
	"kernel.keys.root_maxbytes",
}

// hostPaths are host-wide paths the components create even when told to keep
// their state elsewhere (libcni's cache in containerd, kubelet's
// /var/log/containers symlinks) or would create with a wrong setting.
var hostPaths = []string{
	"/var/lib/cni", "/var/log/containers", "/var/log/pods", "/var/lib/kubelet",
	"/var/lib/containerd", "/run/containerd", "/opt/containerd", "/etc/containerd",
	"/etc/cni", "/opt/cni", "/etc/kubernetes", "/usr/libexec/kubernetes", "/run/netns",
	"/var/run/kubernetes", "/etc/cdi", "/var/run/cdi",
}

// hostRecord is what Up found before it changed anything; Down restores it.
type hostRecord struct {
	Sysctls map[string]string `json:"sysctls"`
	// Created are hostPaths that did not exist before Up.
	Created []string `json:"created"`
	// Links are the host's network links before Up: a node network may
	// name an existing bridge, which teardown must leave alone.
	Links []string `json:"links"`
}

func readSysctl(key string) (string, error) {
	b, err := os.ReadFile(sysctlPath(key))
	return strings.TrimSpace(string(b)), err
}

func sysctlPath(key string) string {
	return filepath.Join("/proc/sys", strings.ReplaceAll(key, ".", "/"))
}

func (l layout) recordHost() error {
	rec := hostRecord{Sysctls: map[string]string{}}
	for _, k := range hostSysctls {
		if v, err := readSysctl(k); err == nil {
			rec.Sysctls[k] = v
		}
	}
	for _, p := range hostPaths {
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			rec.Created = append(rec.Created, p)
		}
	}
	links, err := os.ReadDir("/sys/class/net")
	if err != nil {
		return err
	}
	for _, l := range links {
		rec.Links = append(rec.Links, l.Name())
	}
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(l.hostFile(), b, 0o644)
}

// restoreHost puts back sysctls and removes host paths the cluster created;
// in paths that existed before, it removes only symlinks into the state dir.
func (l layout) restoreHost() error {
	var errs []error
	b, err := os.ReadFile(l.hostFile())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var rec hostRecord
	if len(b) > 0 {
		if err := json.Unmarshal(b, &rec); err != nil {
			return fmt.Errorf("read %s: %w", l.hostFile(), err)
		}
	}
	for k, v := range rec.Sysctls {
		if cur, err := readSysctl(k); err == nil && cur != v {
			if err := os.WriteFile(sysctlPath(k), []byte(v), 0o644); err != nil {
				errs = append(errs, fmt.Errorf("restore sysctl %s=%s: %w", k, v, err))
			}
		}
	}
	created := map[string]bool{}
	for _, p := range rec.Created {
		created[p] = true
	}
	for _, p := range hostPaths {
		if created[p] {
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			continue
		}
		for _, e := range ents {
			full := filepath.Join(p, e.Name())
			if t, err := os.Readlink(full); err == nil && strings.HasPrefix(t, l.opts.StateDir+"/") {
				_ = os.Remove(full)
			}
		}
	}
	return errors.Join(errs...)
}

// ourProcesses lists processes that belong to the cluster: those naming
// its directories on their command line (every daemon, shim and runc call),
// CNI plugins run from its bin dir, and those living in its nodes' cgroups
// (containers). Other programs in the bin dir (a benchmark) are not its.
func (l layout) ourProcesses() []int {
	self := os.Getpid()
	inCgroup := map[int]bool{}
	for _, n := range l.nodes {
		for _, h := range cgroupHierarchies() {
			_ = filepath.WalkDir(filepath.Join(h, n.CgroupRoot), func(p string, d os.DirEntry, err error) error {
				if err != nil || !d.IsDir() {
					return nil
				}
				b, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
				for _, f := range strings.Fields(string(b)) {
					if pid, err := strconv.Atoi(f); err == nil {
						inCgroup[pid] = true
					}
				}
				return nil
			})
		}
	}
	ents, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if inCgroup[pid] {
			out = append(out, pid)
			continue
		}
		exe, _ := os.Readlink(fmt.Sprintf("/proc/%d/exe", pid))
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		cl := string(cmdline)
		if strings.HasPrefix(exe, l.cniBinDir()+"/") || strings.Contains(cl, l.opts.StateDir+"/") || strings.Contains(cl, l.opts.RunDir+"/") {
			if _, err := startTime(pid); err == nil { // not a zombie
				out = append(out, pid)
			}
		}
	}
	sort.Ints(out)
	return out
}

// killAll SIGKILLs the cluster's remaining processes until none is left.
func (l layout) killAll(ctx context.Context) error {
	return poll.Until(ctx, 50*time.Millisecond, 5*time.Second, func(context.Context) error {
		left := l.ourProcesses()
		for _, pid := range left {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if len(left) > 0 {
			return fmt.Errorf("processes still running after SIGKILL: %v", left)
		}
		return nil
	})
}

// mountsUnder lists mount points at or below any of dirs, deepest first.
func mountsUnder(dirs ...string) []string {
	mounts, _ := mountinfo.GetMounts(func(m *mountinfo.Info) (skip, stop bool) {
		for _, d := range dirs {
			if d == "/" || m.Mountpoint == d || strings.HasPrefix(m.Mountpoint, d+"/") {
				return false, false
			}
		}
		return true, false
	})
	out := make([]string, 0, len(mounts))
	for _, m := range mounts {
		out = append(out, m.Mountpoint)
	}
	sort.Slice(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

func unmountAll(dirs ...string) error {
	for i := 0; i < 5; i++ {
		mps := mountsUnder(dirs...)
		if len(mps) == 0 {
			return nil
		}
		for _, mp := range mps {
			_ = syscall.Unmount(mp, syscall.MNT_DETACH)
		}
	}
	if mps := mountsUnder(dirs...); len(mps) > 0 {
		return fmt.Errorf("mounts left: %v", mps)
	}
	return nil
}

// deleteLinks removes each node's bridge, the bridges its extra networks
// made (the bridge plugin never deletes one), and links enslaved to them.
func (l layout) deleteLinks() error {
	var errs []error
	preexisting := map[string]bool{}
	if b, err := os.ReadFile(l.hostFile()); err == nil {
		var rec hostRecord
		if json.Unmarshal(b, &rec) == nil {
			for _, l := range rec.Links {
				preexisting[l] = true
			}
		}
	}
	for _, n := range l.nodes {
		for _, br := range append([]string{n.Bridge}, bridgesOf(n.NetworksDir())...) {
			if _, err := os.Stat("/sys/class/net/" + br); err != nil || preexisting[br] {
				continue
			}
			ports, _ := os.ReadDir(filepath.Join("/sys/class/net", br, "brif"))
			for _, p := range ports {
				_ = exec.Command("ip", "link", "del", p.Name()).Run()
			}
			if out, err := exec.Command("ip", "link", "del", br).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("delete bridge %s: %v: %s", br, err, strings.TrimSpace(string(out))))
			}
		}
	}
	return errors.Join(errs...)
}

// bridgesOf lists the bridges of the bridge plugins of dir's network config
// lists.
func bridgesOf(dir string) []string {
	confs, _ := readNetworkConfs(dir)
	var out []string
	for _, c := range confs {
		out = append(out, c.Bridges...)
	}
	return out
}

// cgroupHierarchies lists the mounted cgroup hierarchies (v1 and unified).
func cgroupHierarchies() []string {
	ents, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return nil
	}
	var out []string
	for _, e := range ents {
		p := filepath.Join("/sys/fs/cgroup", e.Name())
		if fi, err := os.Lstat(p); err == nil && fi.IsDir() {
			if _, err := os.Stat(filepath.Join(p, "cgroup.procs")); err == nil {
				out = append(out, p)
			}
		}
	}
	if len(out) == 0 { // pure cgroup v2
		out = append(out, "/sys/fs/cgroup")
	}
	return out
}

// createCgroupRoot creates kubelet's cgroupRoot in every hierarchy. cpuset
// children start with no CPUs or memory nodes: copy the parent's.
func createCgroupRoot(root string) error {
	for _, h := range cgroupHierarchies() {
		p := filepath.Join(h, root)
		if err := os.MkdirAll(p, 0o755); err != nil {
			return fmt.Errorf("create cgroup %s: %w", p, err)
		}
		for _, f := range []string{"cpuset.cpus", "cpuset.mems"} {
			if v, err := os.ReadFile(filepath.Join(h, f)); err == nil {
				if cur, _ := os.ReadFile(filepath.Join(p, f)); strings.TrimSpace(string(cur)) == "" {
					_ = os.WriteFile(filepath.Join(p, f), v, 0o644)
				}
			}
		}
	}
	return nil
}

// removeCgroupRoots removes the nodes' cgroup trees, children first.
func (l layout) removeCgroupRoots(ctx context.Context) error {
	var errs []error
	for _, n := range l.nodes {
		for _, h := range cgroupHierarchies() {
			root := filepath.Join(h, n.CgroupRoot)
			var dirs []string
			_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
				if err == nil && d.IsDir() {
					dirs = append(dirs, p)
				}
				return nil
			})
			sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
			for _, d := range dirs {
				// A just-killed task may linger briefly.
				err := poll.Until(ctx, 20*time.Millisecond, time.Second, func(context.Context) error {
					if err := syscall.Rmdir(d); err != nil && !errors.Is(err, os.ErrNotExist) {
						return err
					}
					return nil
				})
				if err != nil {
					errs = append(errs, fmt.Errorf("remove cgroup %s: %w", d, err))
				}
			}
		}
	}
	return errors.Join(errs...)
}
