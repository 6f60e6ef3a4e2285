//go:build integration

package attachment

import (
	"crypto/sha512"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
)

// requirePlugins fails unless the real plugins names are in the env's bin
// dir: a key whose plugin is missing must fail, not pass unproven.
func (e *realEnv) requirePlugins(t testing.TB, names ...string) {
	t.Helper()
	for _, p := range names {
		if _, err := os.Stat(filepath.Join(e.binDirs[len(e.binDirs)-1], p)); err != nil {
			t.Fatalf("CNI plugin %s: %v (run `make build`)", p, err)
		}
	}
}

// route is a route as `ip -j route` prints it.
type route struct {
	Dst     string `json:"dst"`
	Gateway string `json:"gateway"`
	Dev     string `json:"dev"`
}

func (r route) String() string { return r.Dst + " via " + r.Gateway + " dev " + r.Dev }

// defaultRoutesIn returns the default routes of family ("-4", "-6") in
// netns, as "default via <gw> dev <dev>".
func defaultRoutesIn(t testing.TB, netns ns.NetNS, family string) []string {
	t.Helper()
	out, err := ipCmd("-n", filepath.Base(netns.Path()), family, "-j", "route", "show", "default")
	if err != nil {
		t.Fatal(err)
	}
	var routes []route
	if err := json.Unmarshal([]byte(out), &routes); err != nil {
		t.Fatalf("ip -j route: %v: %s", err, out)
	}
	var s []string
	for _, r := range routes {
		s = append(s, r.String())
	}
	slices.Sort(s)
	return s
}

// primaryInterface gives netns an eth0 with addresses and default routes via
// v4gw and v6gw, as the pod's primary network would: one end of a veth pair
// whose other end, eth0peer, is in the netns too, so both go with it (this
// kernel has no dummy links).
func primaryInterface(t testing.TB, netns ns.NetNS, v4, v4gw, v6, v6gw string) {
	t.Helper()
	name := filepath.Base(netns.Path())
	for _, args := range [][]string{
		{"link", "add", "eth0", "type", "veth", "peer", "name", primaryPeer},
		{"link", "set", primaryPeer, "up"},
		{"link", "set", "eth0", "up"},
		{"addr", "add", v4, "dev", "eth0"},
		{"-6", "addr", "add", v6, "dev", "eth0", "nodad"},
		{"route", "add", "default", "via", v4gw, "dev", "eth0"},
		{"-6", "route", "add", "default", "via", v6gw, "dev", "eth0"},
	} {
		if _, err := ipCmd(append([]string{"-n", name}, args...)...); err != nil {
			t.Fatal(err)
		}
	}
}

// primaryPeer is the other end of primaryInterface's eth0.
const primaryPeer = "eth0peer"

// hashName is the name portmap and bandwidth derive for a network and
// container: utils.MustFormatHashWithPrefix of the plugins (that package
// pulls in iptables, which this module does not require).
func hashName(length int, prefix, network, containerID string) string {
	return fmt.Sprintf("%s%x", prefix, sha512.Sum512([]byte(network+containerID)))[:length]
}

// portmapChain is the per-container DNAT chain of portmap's iptables
// backend.
func portmapChain(network, containerID string) string {
	return hashName(28, "CNI-DN-", network, containerID)
}

// ifbName is the ifb link the bandwidth plugin makes for egress shaping.
func ifbName(network, containerID string) string {
	return hashName(15, "bwp", network, containerID)
}

// natRules returns `iptables -t nat -S`.
func natRules(t testing.TB) []string {
	t.Helper()
	out, err := exec.Command("iptables", "-t", "nat", "-S").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables -t nat -S: %v: %s", err, out)
	}
	return strings.Split(strings.TrimSpace(string(out)), "\n")
}

// portmapHostChains are the chains portmap creates once and never deletes.
var portmapHostChains = []string{"CNI-HOSTPORT-DNAT", "CNI-HOSTPORT-SETMARK", "CNI-HOSTPORT-MASQ"}

// restorePortmapChains removes, at cleanup, the host chains of portmap that
// do not exist now, with the jumps to them: the host is left as it was.
func restorePortmapChains(t testing.TB) {
	t.Helper()
	before := natRules(t)
	t.Cleanup(func() {
		var created []string
		for _, c := range portmapHostChains {
			if !slices.Contains(before, "-N "+c) {
				created = append(created, c)
			}
		}
		for _, rule := range natRules(t) {
			chain, target := ruleChain(rule), ruleTarget(rule)
			if !slices.Contains(created, chain) && slices.Contains(created, target) {
				// -S quotes as a shell would.
				del := "iptables -t nat " + strings.Replace(rule, "-A ", "-D ", 1)
				if out, err := exec.Command("sh", "-c", del).CombinedOutput(); err != nil {
					t.Errorf("cleanup: %s: %v: %s", del, err, out)
				}
			}
		}
		for _, c := range created {
			for _, op := range []string{"-F", "-X"} {
				if out, err := exec.Command("iptables", "-t", "nat", op, c).CombinedOutput(); err != nil && !strings.Contains(string(out), "No chain") {
					t.Errorf("cleanup: iptables -t nat %s %s: %v: %s", op, c, err, out)
				}
			}
		}
	})
}

// ruleChain and ruleTarget read "-A <chain> ... -j <target> ...".
func ruleChain(rule string) string {
	f := strings.Fields(rule)
	if len(f) > 1 && f[0] == "-A" {
		return f[1]
	}
	return ""
}

func ruleTarget(rule string) string {
	f := strings.Fields(rule)
	if i := slices.Index(f, "-j"); i >= 0 && i+1 < len(f) {
		return f[i+1]
	}
	return ""
}

// qdiscs returns the kinds of the qdiscs of link.
func qdiscs(t testing.TB, link string) []string {
	t.Helper()
	out, err := exec.Command("tc", "-j", "qdisc", "show", "dev", link).CombinedOutput()
	if err != nil {
		t.Fatalf("tc qdisc show dev %s: %v: %s", link, err, out)
	}
	var qs []struct {
		Kind string `json:"kind"`
	}
	if err := json.Unmarshal(out, &qs); err != nil {
		t.Fatalf("tc -j: %v: %s", err, out)
	}
	var kinds []string
	for _, q := range qs {
		kinds = append(kinds, q.Kind)
	}
	return kinds
}

// linkExists tells whether the host has link name.
func linkExists(name string) bool {
	_, err := ipCmd("link", "show", "dev", name)
	return err == nil
}

// linkAddrs returns the addresses (CIDR) of ifname in netns, IPv6 too.
func linkAddrs(t testing.TB, netns ns.NetNS, ifname string) []string {
	t.Helper()
	out, err := ipCmd("-n", filepath.Base(netns.Path()), "-j", "addr", "show", "dev", ifname, "scope", "global")
	if err != nil {
		t.Fatal(err)
	}
	var links []struct {
		Addrs []struct {
			Local     string `json:"local"`
			PrefixLen int    `json:"prefixlen"`
		} `json:"addr_info"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		t.Fatalf("ip -j addr: %v: %s", err, out)
	}
	var addrs []string
	for _, l := range links {
		for _, a := range l.Addrs {
			if a.Local == "" {
				continue // ip -j lists the link's other info as empty entries
			}
			addrs = append(addrs, fmt.Sprintf("%s/%d", a.Local, a.PrefixLen))
		}
	}
	return addrs
}
