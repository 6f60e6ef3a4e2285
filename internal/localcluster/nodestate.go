package localcluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/moby/sys/mountinfo"
)

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
func (c *Cluster) NodeState(node string) (NodeState, error) {
	n, err := c.l.node(node)
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
	subnets, bridges := []string{n.Subnet}, []string{n.Bridge}
	for _, nc := range nets {
		subnets, bridges = append(subnets, nc.Subnets...), append(bridges, nc.Bridges...)
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
	if s.Links, err = nodeLinks(out, bridges, subnets); err != nil {
		return s, err
	}
	mi, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return s, err
	}
	defer mi.Close()
	if s.NetNS, err = nsfsMountsUnder(mi, n.Dir); err != nil {
		return s, err
	}
	proxyDir := n.ProxyStateDir()
	if s.ProxyRecords, err = jsonFiles(proxyDir); err != nil {
		return s, err
	}
	if s.ProxyIntents, err = jsonFiles(filepath.Join(proxyDir, "intents")); err != nil {
		return s, err
	}
	return s, nil
}

// networkConf is what NodeState and teardown need of a network config list.
type networkConf struct {
	Name    string
	IPAM    string // the first plugin's IPAM type that has one
	DataDir string // host-local's; /var/lib/cni/networks by default
	Subnets []string
	Bridges []string // of its bridge plugins (never the host's default cni0)
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
		Type   string `json:"type"`
		Bridge string `json:"bridge"`
		IPAM   *ipam  `json:"ipam"`
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
			if p.Type == "bridge" && p.Bridge != "" {
				nc.Bridges = append(nc.Bridges, p.Bridge)
			}
			if p.IPAM == nil || p.IPAM.Type == "" || nc.IPAM != "" {
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

// nsfsMountsUnder lists the namespace mounts (fstype nsfs) below dir in a
// /proc/<pid>/mountinfo text.
func nsfsMountsUnder(r io.Reader, dir string) ([]string, error) {
	mounts, err := mountinfo.GetMountsFromReader(r, func(m *mountinfo.Info) (skip, stop bool) {
		return m.FSType != "nsfs" || !strings.HasPrefix(m.Mountpoint, dir+"/"), false
	})
	if err != nil {
		return nil, fmt.Errorf("read mountinfo: %w", err)
	}
	out := make([]string, 0, len(mounts))
	for _, m := range mounts {
		out = append(out, m.Mountpoint)
	}
	sort.Strings(out)
	return out, nil
}
