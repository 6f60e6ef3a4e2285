package localcluster

// Faults injected into a running cluster, and the per-node host state a
// fault test counts to prove nothing leaked.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// faultTimeout bounds each fault operation unless ctx ends sooner.
const faultTimeout = 60 * time.Second

// node returns the cluster's node of that name.
func (o *Options) node(name string) (Node, error) {
	for _, n := range o.nodes() {
		if n.Name == name {
			return n, nil
		}
	}
	return Node{}, fmt.Errorf("no node %q (nodes are node1..node%d)", name, o.Nodes)
}

// KillProxy SIGKILLs the node's CRI proxy by its recorded pid, as a crash
// would, and returns once the process is gone and its socket and metrics
// port refuse connections. The proxy's socket file and state stay as the
// crash left them; StartProxy starts it again.
func (c *Cluster) KillProxy(node string) error {
	n, err := c.node(node)
	if err != nil {
		return err
	}
	if !c.CRIProxy {
		return fmt.Errorf("%s: the cluster runs no CRI proxy", n.Name)
	}
	if err := c.killDaemon(n.Name + "-cri-proxy"); err != nil {
		return err
	}
	for _, addr := range [][2]string{{"unix", n.ProxySocket()}, {"tcp", fmt.Sprintf("127.0.0.1:%d", n.ProxyPort)}} {
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			conn, err := net.DialTimeout(addr[0], addr[1], time.Second)
			if err != nil {
				break
			}
			conn.Close()
			if time.Now().After(deadline) {
				return fmt.Errorf("%s-cri-proxy: %s still accepts connections 10s after the proxy was killed", n.Name, addr[1])
			}
		}
	}
	return nil
}

// StartProxy starts the node's CRI proxy again with the arguments Up gave
// it, appending to its log, and waits until its /healthz answers (it serves
// and reaches containerd). It fails if the proxy is running.
func (c *Cluster) StartProxy(ctx context.Context, node string) error {
	n, err := c.node(node)
	if err != nil {
		return err
	}
	if !c.CRIProxy {
		return fmt.Errorf("%s: the cluster runs no CRI proxy", n.Name)
	}
	d := c.proxyDaemon(n)
	if r := c.recorded(d.name); r != nil && r.alive() {
		return fmt.Errorf("%s is running (pid %d)", d.name, r.pid)
	}
	ctx, cancel := context.WithTimeout(ctx, faultTimeout)
	defer cancel()
	d.restart = true
	p, err := c.startDaemon(d)
	if err != nil {
		return err
	}
	return p.waitReady(ctx, c.proxyHealthy(n))
}

// RestartContainerd stops the node's containerd (SIGTERM, SIGKILL after a
// grace period), starts it again with the same arguments, appending to its
// log, and waits until its CRI plugin reports the runtime and the network
// ready, and kubelet's CRI endpoint (the proxy, when there is one) answers
// too. The pods' shims and containers keep running meanwhile.
func (c *Cluster) RestartContainerd(ctx context.Context, node string) error {
	n, err := c.node(node)
	if err != nil {
		return err
	}
	d := c.containerdDaemon(n)
	r := c.recorded(d.name)
	if r == nil || !r.alive() {
		return fmt.Errorf("%s is not running", d.name)
	}
	ctx, cancel := context.WithTimeout(ctx, faultTimeout)
	defer cancel()
	c.stopDaemon(d.name, 10*time.Second)
	// Its files (the metadata database's lock, the sockets) are closed.
	for deadline := time.Now().Add(10 * time.Second); !exited(r.pid, r.start); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: pid %d still running after SIGKILL", d.name, r.pid)
		}
	}
	d.restart = true
	p, err := c.startDaemon(d)
	if err != nil {
		return err
	}
	ready := c.containerdReady(n)
	return p.waitReady(ctx, func(ctx context.Context) error {
		if err := ready(ctx); err != nil {
			return err
		}
		if err := criReady(ctx, "unix://"+n.ContainerdSocket()); err != nil {
			return fmt.Errorf("containerd: %w", err)
		}
		if ep := c.criEndpoint(n); ep != "unix://"+n.ContainerdSocket() {
			if err := criReady(ctx, ep); err != nil {
				return fmt.Errorf("kubelet's endpoint %s: %w", ep, err)
			}
		}
		return nil
	})
}

// killDaemon SIGKILLs a recorded daemon, waits until it is gone for good
// (see exited) and removes its pid file.
func (o *Options) killDaemon(name string) error {
	r := o.recorded(name)
	if r == nil || !r.alive() {
		return fmt.Errorf("%s is not running", name)
	}
	if err := syscall.Kill(r.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%s: kill %d: %w", name, r.pid, err)
	}
	for deadline := time.Now().Add(10 * time.Second); !exited(r.pid, r.start); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: pid %d still running 10s after SIGKILL", name, r.pid)
		}
	}
	return os.Remove(filepath.Join(o.pidDir(), name+".pid"))
}

// exited reports whether the process pid that started at start is gone for
// good: reaped, or a zombie none of whose threads still runs. A zombie
// thread-group leader is not enough: its other threads may still be
// exiting, and the last one closes the process's files (a listening socket
// that a restarted daemon needs).
func exited(pid int, start uint64) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	state, st, err := parseStat(b)
	if err != nil || st != start {
		return true // another process reuses the pid
	}
	if state != "Z" && state != "X" {
		return false
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	return err != nil || len(tasks) <= 1
}

// parseStat returns the state and start time (in clock ticks) of a
// /proc/<pid>/stat text.
func parseStat(b []byte) (string, uint64, error) {
	// The command name (field 2) may hold spaces: fields start after ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return "", 0, errors.New("no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return "", 0, fmt.Errorf("%d fields", len(f))
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	return f[0], st, err
}

// criReady checks that the CRI runtime at endpoint reports RuntimeReady and
// NetworkReady.
func criReady(ctx context.Context, endpoint string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	st, err := runtimeapi.NewRuntimeServiceClient(conn).Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return err
	}
	for _, want := range []string{runtimeapi.RuntimeReady, runtimeapi.NetworkReady} {
		ok := false
		for _, cond := range st.GetStatus().GetConditions() {
			if cond.GetType() == want {
				ok = cond.GetStatus()
				if !ok {
					return fmt.Errorf("%s false: %s: %s", want, cond.GetReason(), cond.GetMessage())
				}
			}
		}
		if !ok {
			return fmt.Errorf("no %s condition", want)
		}
	}
	return nil
}

// ContainerSandbox returns the ID of the pod sandbox a container runs in,
// asking the node's containerd. containerID may carry kubelet's
// "containerd://" prefix.
func (o *Options) ContainerSandbox(ctx context.Context, node, containerID string) (string, error) {
	n, err := o.node(node)
	if err != nil {
		return "", err
	}
	_, id, found := strings.Cut(containerID, "://")
	if !found {
		id = containerID
	}
	conn, err := grpc.NewClient("unix://"+n.ContainerdSocket(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	list, err := runtimeapi.NewRuntimeServiceClient(conn).ListContainers(ctx, &runtimeapi.ListContainersRequest{
		Filter: &runtimeapi.ContainerFilter{Id: id}})
	if err != nil {
		return "", err
	}
	if len(list.GetContainers()) != 1 {
		return "", fmt.Errorf("%s: %d containers with ID %s", n.Name, len(list.GetContainers()), id)
	}
	return list.GetContainers()[0].GetPodSandboxId(), nil
}

// NodeState is what a node's pods hold on the host, by name so that a leak
// can be shown; Counts summarises it.
type NodeState struct {
	Node string
	// Leases are host-local's address files of each of the node's networks
	// whose IPAM is host-local, by network: the primary network
	// (primary-<node>, containerd's) and the extra networks of its
	// networks dir (the proxy's).
	Leases map[string][]string
	// Links are the host links of the node's networks: its bridges (the
	// primary network's and its extra networks'), the links enslaved to
	// them, and veths holding an address of one of its subnets (ptp's
	// host ends).
	Links []string
	// NetNS are the network namespaces mounted under the node's state dir
	// (containerd's, with netns_mounts_under_state_dir).
	NetNS []string
	// ProxyRecords are the CRI proxy's attachment records
	// (<node dir>/cri-proxy/*.json), ProxyIntents its intent records
	// (<node dir>/cri-proxy/intents/*.json).
	ProxyRecords, ProxyIntents []string
}

// Counts are the sizes of a NodeState, comparable with ==.
type Counts struct {
	Leases                                   string // network=count,... sorted
	Links, NetNS, ProxyRecords, ProxyIntents int
}

// Counts summarises s.
func (s NodeState) Counts() Counts {
	var leases []string
	for _, name := range mapKeys(s.Leases) {
		leases = append(leases, fmt.Sprintf("%s=%d", name, len(s.Leases[name])))
	}
	return Counts{Leases: strings.Join(leases, ","), Links: len(s.Links), NetNS: len(s.NetNS),
		ProxyRecords: len(s.ProxyRecords), ProxyIntents: len(s.ProxyIntents)}
}

// LeaseCount is the number of leases of all the node's networks.
func (s NodeState) LeaseCount() int {
	total := 0
	for _, l := range s.Leases {
		total += len(l)
	}
	return total
}

func (c Counts) String() string {
	leases := c.Leases
	if leases == "" {
		leases = "-"
	}
	return fmt.Sprintf("leases %s, links %d, netns %d, proxy records %d, intents %d",
		leases, c.Links, c.NetNS, c.ProxyRecords, c.ProxyIntents)
}

// Diff lists, one per entry, what s holds that before did not and the
// reverse.
func (before NodeState) Diff(s NodeState) []string {
	var d []string
	list := func(what string, a, b []string) {
		for _, x := range b {
			if !slices.Contains(a, x) {
				d = append(d, fmt.Sprintf("%s added: %s", what, x))
			}
		}
		for _, x := range a {
			if !slices.Contains(b, x) {
				d = append(d, fmt.Sprintf("%s removed: %s", what, x))
			}
		}
	}
	nets := mapKeys(before.Leases)
	for k := range s.Leases {
		if _, ok := before.Leases[k]; !ok {
			nets = append(nets, k)
		}
	}
	sort.Strings(nets)
	for _, name := range nets {
		list("lease "+name, before.Leases[name], s.Leases[name])
	}
	list("link", before.Links, s.Links)
	list("netns", before.NetNS, s.NetNS)
	list("proxy record", before.ProxyRecords, s.ProxyRecords)
	list("proxy intent", before.ProxyIntents, s.ProxyIntents)
	return d
}

func mapKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// NodeState captures what the node's pods hold on the host. It reads each
// network's IPAM from the node's CNI conf dir and networks dir as they are
// now.
func (o *Options) NodeState(node string) (NodeState, error) {
	n, err := o.node(node)
	if err != nil {
		return NodeState{}, err
	}
	s := NodeState{Node: n.Name, Leases: map[string][]string{}}
	var nets []networkConf
	for _, dir := range []string{n.CNIConfDir(), n.NetworksDir()} {
		confs, err := readNetworkConfs(dir)
		if err != nil {
			return s, err
		}
		nets = append(nets, confs...)
	}
	subnets := []string{n.Subnet}
	for _, nc := range nets {
		subnets = append(subnets, nc.Subnets...)
		if nc.IPAM != "host-local" {
			continue
		}
		l, err := leaseFiles(filepath.Join(nc.DataDir, nc.Name))
		if err != nil {
			return s, fmt.Errorf("leases of %s: %w", nc.Name, err)
		}
		s.Leases[nc.Name] = l
	}
	out, err := exec.Command("ip", "-j", "-d", "addr", "show").Output()
	if err != nil {
		return s, fmt.Errorf("ip -j -d addr show: %w", err)
	}
	if s.Links, err = nodeLinks(out, append([]string{n.Bridge}, bridgesOf(n.NetworksDir())...), subnets); err != nil {
		return s, err
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return s, err
	}
	s.NetNS = nsfsMountsUnder(string(mi), n.Dir)
	proxyDir := filepath.Join(n.Dir, "cri-proxy")
	if s.ProxyRecords, err = jsonFiles(proxyDir); err != nil {
		return s, err
	}
	if s.ProxyIntents, err = jsonFiles(filepath.Join(proxyDir, "intents")); err != nil {
		return s, err
	}
	return s, nil
}

// networkConf is what NodeState needs of a network config list.
type networkConf struct {
	Name    string
	IPAM    string // the first plugin's IPAM type that has one
	DataDir string // host-local's; /var/lib/cni/networks by default
	Subnets []string
}

// readNetworkConfs reads the network config lists of dir (*.conflist,
// *.conf, *.json; hidden files and invalid ones are skipped, like the
// proxy does).
func readNetworkConfs(dir string) ([]networkConf, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	type ipam struct {
		Type    string `json:"type"`
		DataDir string `json:"dataDir"`
		Ranges  [][]struct {
			Subnet string `json:"subnet"`
		} `json:"ranges"`
		Subnet string `json:"subnet"` // the older single-range form
	}
	type plugin struct {
		IPAM *ipam `json:"ipam"`
	}
	var out []networkConf
	for _, e := range ents {
		ext := filepath.Ext(e.Name())
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") || (ext != ".conflist" && ext != ".conf" && ext != ".json") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		var conf struct {
			Name    string   `json:"name"`
			Plugins []plugin `json:"plugins"`
			plugin
		}
		if json.Unmarshal(b, &conf) != nil || conf.Name == "" {
			continue
		}
		plugins := conf.Plugins
		if len(plugins) == 0 {
			plugins = []plugin{conf.plugin}
		}
		nc := networkConf{Name: conf.Name}
		for _, p := range plugins {
			if p.IPAM == nil || p.IPAM.Type == "" {
				continue
			}
			nc.IPAM, nc.DataDir = p.IPAM.Type, p.IPAM.DataDir
			if nc.DataDir == "" {
				nc.DataDir = "/var/lib/cni/networks"
			}
			if p.IPAM.Subnet != "" {
				nc.Subnets = append(nc.Subnets, p.IPAM.Subnet)
			}
			for _, set := range p.IPAM.Ranges {
				for _, r := range set {
					nc.Subnets = append(nc.Subnets, r.Subnet)
				}
			}
			break
		}
		out = append(out, nc)
	}
	return out, nil
}

// leaseFiles lists host-local's address files in a network's lease dir.
func leaseFiles(dir string) ([]string, error) {
	return fileNames(dir, func(e os.DirEntry) bool { return net.ParseIP(e.Name()) != nil })
}

// jsonFiles lists the *.json files of dir (not temporaries of an
// interrupted write).
func jsonFiles(dir string) ([]string, error) {
	return fileNames(dir, func(e os.DirEntry) bool {
		return !e.IsDir() && !strings.HasPrefix(e.Name(), ".") && strings.HasSuffix(e.Name(), ".json")
	})
}

// fileNames lists the names of dir's entries that keep accepts; a missing
// dir has none.
func fileNames(dir string, keep func(os.DirEntry) bool) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if keep(e) {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// nodeLinks picks, from `ip -j -d addr show` output, the bridges named,
// the links enslaved to them, and the veths holding an IPv4 address in one
// of subnets. Each is listed as "name (kind)".
func nodeLinks(ipJSON []byte, bridges, subnets []string) ([]string, error) {
	var links []struct {
		IfName   string `json:"ifname"`
		Master   string `json:"master"`
		LinkInfo struct {
			Kind string `json:"info_kind"`
		} `json:"linkinfo"`
		AddrInfo []struct {
			Family string `json:"family"`
			Local  string `json:"local"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal(ipJSON, &links); err != nil {
		return nil, fmt.Errorf("parse ip -j output: %w", err)
	}
	var nets []*net.IPNet
	for _, s := range subnets {
		if _, n, err := net.ParseCIDR(s); err == nil {
			nets = append(nets, n)
		}
	}
	inSubnets := func(addr string) bool {
		ip := net.ParseIP(addr)
		for _, n := range nets {
			if ip != nil && n.Contains(ip) {
				return true
			}
		}
		return false
	}
	var out []string
	for _, l := range links {
		mine := slices.Contains(bridges, l.IfName) || (l.Master != "" && slices.Contains(bridges, l.Master))
		if !mine && l.LinkInfo.Kind == "veth" {
			for _, a := range l.AddrInfo {
				if a.Family == "inet" && inSubnets(a.Local) {
					mine = true
					break
				}
			}
		}
		if mine {
			kind := l.LinkInfo.Kind
			if kind == "" {
				kind = "?"
			}
			out = append(out, fmt.Sprintf("%s (%s)", l.IfName, kind))
		}
	}
	sort.Strings(out)
	return out, nil
}

// nsfsMountsUnder lists the namespace mounts (fstype nsfs) at or below dir
// in a /proc/<pid>/mountinfo text.
func nsfsMountsUnder(mountinfo, dir string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(mountinfo))
	for sc.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source super
		pre, post, ok := strings.Cut(sc.Text(), " - ")
		if !ok {
			continue
		}
		f, g := strings.Fields(pre), strings.Fields(post)
		if len(f) < 5 || len(g) < 1 || g[0] != "nsfs" {
			continue
		}
		if mp := unescapeMount(f[4]); strings.HasPrefix(mp, dir+"/") {
			out = append(out, mp)
		}
	}
	sort.Strings(out)
	return out
}
