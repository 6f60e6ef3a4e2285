//go:build integration

package attachment

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"

	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// The request keys of netrequest (ips, mac, portMappings, bandwidth,
// cni-args, default-route) with the real plugins that honour them, each
// checked in the kernel after ADD and gone after DEL.

// TestIntegrationStaticIPs: the "ips" capability, to host-local (a lease of
// that address) and to static IPAM.
func TestIntegrationStaticIPs(t *testing.T) {
	e := newRealEnv(t)
	e.requirePlugins(t, "bridge", "host-local", "macvlan", "static")
	br := pluginBridgeName(t)
	master := hostBridge(t)
	e.addNetwork(t, "blue", fmt.Sprintf(`{"cniVersion": "1.1.0", "name": "blue", "plugins": [
  {"type": "bridge", "bridge": %q, "capabilities": {"ips": true},
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.251.70.0/24"}]], "dataDir": %q}}]}`, br, e.dataDir))
	e.addNetwork(t, "green", fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "green", "plugins": [
  {"type": "macvlan", "master": %q, "mode": "bridge", "capabilities": {"ips": true}, "ipam": {"type": "static"}}]}`, master))
	m := e.manager(t, Config{})
	netns := newNetNS(t)
	ctx := context.Background()

	atts, err := m.Attach(ctx, pod("ips1"), netns.Path(), []Request{
		{Name: "blue", Interface: "net1", IPs: []string{"10.251.70.77/24"}},
		{Name: "green", Interface: "net2", IPs: []string{"10.251.71.9/24", "fd00:251:71::9/64"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := linkAddrs(t, netns, "net1"); !slices.Equal(got, []string{"10.251.70.77/24"}) {
		t.Errorf("net1 addresses = %v, want the requested 10.251.70.77/24", got)
	}
	if got := leases(t, e.dataDir, "blue"); !slices.Equal(got, []string{"10.251.70.77"}) {
		t.Errorf("host-local leases = %v, want the requested address", got)
	}
	got := linkAddrs(t, netns, "net2")
	slices.Sort(got)
	if !slices.Equal(got, []string{"10.251.71.9/24", "fd00:251:71::9/64"}) {
		t.Errorf("net2 addresses = %v, want the requested ones", got)
	}
	if len(atts) != 2 || !slices.Equal(atts[0].IPs, []string{"10.251.70.77/24"}) {
		t.Errorf("Attach() = %+v", atts)
	}
	if err := m.Detach(ctx, "ips1"); err != nil {
		t.Fatal(err)
	}
	assertClean(t, e, netns, br, "blue", "green")
}

// TestIntegrationMAC: the "mac" capability, to tuning chained after bridge.
func TestIntegrationMAC(t *testing.T) {
	e := newRealEnv(t)
	e.requirePlugins(t, "bridge", "host-local", "tuning")
	br := pluginBridgeName(t)
	e.addNetwork(t, "blue", fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "blue", "plugins": [
  {"type": "bridge", "bridge": %q, "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.251.72.0/24"}]], "dataDir": %q}},
  {"type": "tuning", "capabilities": {"mac": true}}]}`, br, e.dataDir))
	m := e.manager(t, Config{})
	netns := newNetNS(t)
	ctx := context.Background()
	const mac = "02:42:0a:fb:48:07"

	atts, err := m.Attach(ctx, pod("mac1"), netns.Path(), []Request{{Name: "blue", Interface: "net1", MAC: mac}})
	if err != nil {
		t.Fatal(err)
	}
	err = netns.Do(func(ns.NetNS) error {
		i, err := net.InterfaceByName("net1")
		if err == nil && i.HardwareAddr.String() != mac {
			err = fmt.Errorf("net1 has MAC %s, want %s", i.HardwareAddr, mac)
		}
		return err
	})
	if err != nil {
		t.Error(err)
	}
	if len(atts) != 1 || atts[0].MAC != mac {
		t.Errorf("Attach() = %+v, want MAC %s in the result", atts, mac)
	}
	if err := m.Detach(ctx, "mac1"); err != nil {
		t.Fatal(err)
	}
	assertClean(t, e, netns, br, "blue")
}

// TestIntegrationPortMappings: the "portMappings" capability, to portmap
// (iptables backend: this host's nft has no binary, and iptables is the
// plugin's default when it exists) chained after bridge. The DNAT rules
// exist after ADD and are gone after DEL.
func TestIntegrationPortMappings(t *testing.T) {
	e := newRealEnv(t)
	e.requirePlugins(t, "bridge", "host-local", "portmap")
	restorePortmapChains(t)
	br := pluginBridgeName(t)
	e.addNetwork(t, "blue", fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "blue", "plugins": [
  {"type": "bridge", "bridge": %q, "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.251.73.0/24"}]], "dataDir": %q}},
  {"type": "portmap", "backend": "iptables", "capabilities": {"portMappings": true}}]}`, br, e.dataDir))
	m := e.manager(t, Config{})
	netns := newNetNS(t)
	ctx := context.Background()

	atts, err := m.Attach(ctx, pod("ports1"), netns.Path(), []Request{{Name: "blue", Interface: "net1", PortMappings: []netrequest.PortMapping{
		{HostPort: 18080, ContainerPort: 80, Protocol: "tcp"},
		{HostPort: 15353, ContainerPort: 53, Protocol: "UDP", HostIP: "127.0.0.1"},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	ip, _, _ := strings.Cut(atts[0].IPs[0], "/")
	chain := portmapChain("blue", "ports1")
	rules := strings.Join(natRules(t), "\n")
	for _, want := range []string{
		"-N " + chain,
		"-j " + chain,
		"--dport 18080 -j DNAT --to-destination " + ip + ":80",
		"-d 127.0.0.1/32 -p udp -m udp --dport 15353 -j DNAT --to-destination " + ip + ":53",
	} {
		if !strings.Contains(rules, want) {
			t.Errorf("nat rules after ADD lack %q:\n%s", want, rules)
		}
	}
	if err := m.Detach(ctx, "ports1"); err != nil {
		t.Fatal(err)
	}
	rules = strings.Join(natRules(t), "\n")
	if strings.Contains(rules, chain) || strings.Contains(rules, "--dport 18080") || strings.Contains(rules, "--dport 15353") {
		t.Errorf("nat rules after DEL still map the ports:\n%s", rules)
	}
	assertClean(t, e, netns, br, "blue")
}

// TestIntegrationBandwidth: the "bandwidth" capability, to the bandwidth
// plugin chained after bridge: a tbf qdisc on the host veth (ingress) and
// an ifb link with its own (egress) after ADD, gone after DEL.
func TestIntegrationBandwidth(t *testing.T) {
	e := newRealEnv(t)
	e.requirePlugins(t, "bridge", "host-local", "bandwidth")
	br := pluginBridgeName(t)
	ifb := ifbName("blue", "bw1")
	t.Cleanup(func() { deleteLink(t, ifb) })
	e.addNetwork(t, "blue", fmt.Sprintf(`{"cniVersion": "1.0.0", "name": "blue", "plugins": [
  {"type": "bridge", "bridge": %q, "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.251.74.0/24"}]], "dataDir": %q}},
  {"type": "bandwidth", "capabilities": {"bandwidth": true}}]}`, br, e.dataDir))
	m := e.manager(t, Config{})
	netns := newNetNS(t)
	ctx := context.Background()

	bw := &netrequest.Bandwidth{IngressRate: 1_000_000, IngressBurst: 100_000, EgressRate: 2_000_000, EgressBurst: 200_000}
	if _, err := m.Attach(ctx, pod("bw1"), netns.Path(), []Request{{Name: "blue", Interface: "net1", Bandwidth: bw}}); err != nil {
		t.Fatal(err)
	}
	ports := bridgePorts(t, br)
	if len(ports) != 1 {
		t.Fatalf("bridge ports = %v, want the veth", ports)
	}
	if q := qdiscs(t, ports[0]); !slices.Contains(q, "tbf") || !slices.Contains(q, "ingress") {
		t.Errorf("qdiscs of the host veth %s = %v, want tbf (ingress limit) and ingress (egress redirect)", ports[0], q)
	}
	if !linkExists(ifb) {
		t.Fatalf("no ifb link %s after ADD", ifb)
	}
	if q := qdiscs(t, ifb); !slices.Contains(q, "tbf") {
		t.Errorf("qdiscs of %s = %v, want tbf (egress limit)", ifb, q)
	}
	if err := m.Detach(ctx, "bw1"); err != nil {
		t.Fatal(err)
	}
	if linkExists(ifb) {
		t.Errorf("ifb link %s left after DEL", ifb)
	}
	assertClean(t, e, netns, br, "blue")
}

// TestIntegrationCNIArgs: cni-args reach the plugins as args.cni; host-local
// honours args.cni.ips without the "ips" capability.
func TestIntegrationCNIArgs(t *testing.T) {
	e := newRealEnv(t)
	br := pluginBridgeName(t)
	e.addNetwork(t, "blue", fmt.Sprintf(`{"cniVersion": "1.1.0", "name": "blue", "plugins": [
  {"type": "bridge", "bridge": %q, "args": {"cni": {"ips": ["10.251.75.5"], "other": "kept"}},
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.251.75.0/24"}]], "dataDir": %q}}]}`, br, e.dataDir))
	m := e.manager(t, Config{})
	netns := newNetNS(t)
	ctx := context.Background()

	if _, err := m.Attach(ctx, pod("args1"), netns.Path(), []Request{{Name: "blue", Interface: "net1", CNIArgs: json.RawMessage(`{"ips": ["10.251.75.66"]}`)}}); err != nil {
		t.Fatal(err)
	}
	if got := linkAddrs(t, netns, "net1"); !slices.Equal(got, []string{"10.251.75.66/24"}) {
		t.Errorf("net1 addresses = %v, want 10.251.75.66/24 from cni-args (the request's ips win over the config's)", got)
	}
	if got := leases(t, e.dataDir, "blue"); !slices.Equal(got, []string{"10.251.75.66"}) {
		t.Errorf("leases = %v", got)
	}
	if err := m.Detach(ctx, "args1"); err != nil {
		t.Fatal(err)
	}
	assertClean(t, e, netns, br, "blue")
}

// dualStackBridge is a bridge network with an IPv4 and an IPv6 range; the
// gateways host-local reports are .1 and ::1.
func dualStackBridge(name, bridge, v4subnet, v6subnet, dataDir string) string {
	return fmt.Sprintf(`{"cniVersion": "1.0.0", "name": %q, "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": false, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}], [{"subnet": %q}]], "dataDir": %q}}]}`, name, bridge, v4subnet, v6subnet, dataDir)
}

// defaultRouteEnv returns an environment with network blue (a dual-stack
// bridge: 10.251.<n>.0/24, fd00:251:<n>::/64) and red (macvlan,
// 10.251.<n+1>.0/24), a manager, and a netns whose eth0 has default routes
// via 10.251.<n+2>.1 and fd00:251:<n+2>::1.
func defaultRouteEnv(t *testing.T, n int) (*realEnv, string, *Manager, ns.NetNS) {
	t.Helper()
	e := newRealEnv(t)
	br := pluginBridgeName(t)
	e.addNetwork(t, "blue", dualStackBridge("blue", br, fmt.Sprintf("10.251.%d.0/24", n), fmt.Sprintf("fd00:251:%d::/64", n), e.dataDir))
	e.addNetwork(t, "red", macvlanNetwork("red", hostBridge(t), fmt.Sprintf("10.251.%d.0/24", n+1), e.dataDir))
	m := e.manager(t, Config{})
	netns := newNetNS(t)
	primaryInterface(t, netns, fmt.Sprintf("10.251.%d.2/24", n+2), fmt.Sprintf("10.251.%d.1", n+2),
		fmt.Sprintf("fd00:251:%d::2/64", n+2), fmt.Sprintf("fd00:251:%d::1", n+2))
	return e, br, m, netns
}

// assertOnlyPrimary fails unless the netns holds eth0 and its peer only.
func assertOnlyPrimary(t *testing.T, netns ns.NetNS, when string) {
	t.Helper()
	if links := netnsLinks(t, netns); !slices.Equal(slices.Sorted(maps.Keys(links)), []string{"eth0", primaryPeer}) {
		t.Errorf("links in the netns %s = %v, want eth0 and its peer only", when, links)
	}
}

// TestIntegrationDefaultRoute: default-route moves the pod's default routes
// of both families from eth0 to net1, via the requested gateways.
func TestIntegrationDefaultRoute(t *testing.T) {
	e, br, m, netns := defaultRouteEnv(t, 76)
	ctx := context.Background()
	eth0v4, eth0v6 := []string{"default via 10.251.78.1 dev eth0"}, []string{"default via fd00:251:78::1 dev eth0"}
	if v4, v6 := defaultRoutesIn(t, netns, "-4"), defaultRoutesIn(t, netns, "-6"); !slices.Equal(v4, eth0v4) || !slices.Equal(v6, eth0v6) {
		t.Fatalf("default routes before = %v %v, want eth0's", v4, v6)
	}

	_, err := m.Attach(ctx, pod("route1"), netns.Path(), []Request{
		{Name: "red", Interface: "net2"},
		{Name: "blue", Interface: "net1", DefaultRoute: []string{"10.251.76.1", "fd00:251:76::1"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if v4 := defaultRoutesIn(t, netns, "-4"); !slices.Equal(v4, []string{"default via 10.251.76.1 dev net1"}) {
		t.Errorf("IPv4 default routes = %v, want only via 10.251.76.1 dev net1", v4)
	}
	if v6 := defaultRoutesIn(t, netns, "-6"); !slices.Equal(v6, []string{"default via fd00:251:76::1 dev net1"}) {
		t.Errorf("IPv6 default routes = %v, want only via fd00:251:76::1 dev net1", v6)
	}
	if err := m.Detach(ctx, "route1"); err != nil {
		t.Fatal(err)
	}
	assertClean(t, e, nil, br, "blue", "red")
	assertOnlyPrimary(t, netns, "after Detach")
}

// TestIntegrationDefaultRouteUnreachable: a gateway the interface cannot
// reach fails Attach, naming the network and gateway; the default routes
// already moved (IPv4, in the second case) are put back on eth0 and every
// network is rolled back.
func TestIntegrationDefaultRouteUnreachable(t *testing.T) {
	for i, tc := range []struct {
		name     string
		gateways []string
		want     string
	}{
		{"IPv4", []string{"10.99.99.1"}, `network "blue" (interface net1): default route via 10.99.99.1: network is unreachable`},
		{"IPv6 after IPv4", []string{"10.251.79.1", "fd00:99::1"}, `network "blue" (interface net1): default route via fd00:99::1: no route to host`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, br, m, netns := defaultRouteEnv(t, 79)
			id := fmt.Sprintf("unreach%d", i)

			_, err := m.Attach(context.Background(), pod(id), netns.Path(), []Request{
				{Name: "red", Interface: "net2"},
				{Name: "blue", Interface: "net1", DefaultRoute: tc.gateways},
			})
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error = %v, want %q", err, tc.want)
			}
			if v4 := defaultRoutesIn(t, netns, "-4"); !slices.Equal(v4, []string{"default via 10.251.81.1 dev eth0"}) {
				t.Errorf("IPv4 default routes after the failure = %v, want eth0's", v4)
			}
			if v6 := defaultRoutesIn(t, netns, "-6"); !slices.Equal(v6, []string{"default via fd00:251:81::1 dev eth0"}) {
				t.Errorf("IPv6 default routes after the failure = %v, want eth0's", v6)
			}
			assertClean(t, e, nil, br, "blue", "red")
			assertOnlyPrimary(t, netns, "after the rollback")
			if got := m.Attachments(id); got != nil {
				t.Errorf("Attachments() = %v", got)
			}
		})
	}
}

// TestIntegrationCapabilityMissing: a key whose capability no plugin of
// the network declares fails before any ADD: no bridge, lease or record.
func TestIntegrationCapabilityMissing(t *testing.T) {
	e := newRealEnv(t)
	br := pluginBridgeName(t)
	e.addNetwork(t, "blue", bridgeNetwork("blue", "1.1.0", br, "10.251.82.0/24", e.dataDir))
	m := e.manager(t, Config{})
	netns := newNetNS(t)

	_, err := m.Attach(context.Background(), pod("nocap1"), netns.Path(), []Request{
		{Name: "blue", Interface: "net1", IPs: []string{"10.251.82.9/24"}, PortMappings: []netrequest.PortMapping{{HostPort: 18081, ContainerPort: 80}}},
	})
	want := `network "blue" cannot honour "ips": no plugin of its config declares the "ips" capability` + "\n" +
		`network "blue" cannot honour "portMappings": no plugin of its config declares the "portMappings" capability`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want %q", err, want)
	}
	if linkExists(br) {
		t.Errorf("bridge %s exists: the plugin ran", br)
	}
	assertClean(t, e, netns, br, "blue")
}
