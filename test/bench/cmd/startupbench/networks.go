package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// networkName is the name of the node's k-th (1-based) extra network; pods
// of the N-network arm ask for the first N, and the proxy names their
// interfaces net1..netN in that order.
func networkName(k int) string { return fmt.Sprintf("bench%02d", k) }

// networkSubnet is the k-th network's subnet on the node of the given
// index: 10.(200+k).<index>.0/24, apart from the primary network's
// 10.244.<index>.0/24 and the demo's 10.251-253.
func networkSubnet(k int, nodeIndex string) string {
	return fmt.Sprintf("10.%d.%s.0/24", 200+k, nodeIndex)
}

// networkConflist is the k-th network's config list, with the node's
// placeholders (Options.NodeNetworks). Its bridge and subnet are its own.
// host-local keeps its leases in <dataDir>/<network name>: a lease dir per
// network, none under the primary network's (<node dir>/cni/ipam), whose
// overlap the CRI proxy refuses. Not a gateway: the host's ip_forward is
// left alone.
func networkConflist(k int) ([]byte, error) {
	return json.MarshalIndent(map[string]any{
		"cniVersion": "1.0.0",
		"name":       networkName(k),
		"plugins": []any{map[string]any{
			"type":      "bridge",
			"bridge":    fmt.Sprintf("pnbench{{NODE_INDEX}}-%02d", k),
			"isGateway": false,
			"ipMasq":    false,
			"ipam": map[string]any{
				"type":    "host-local",
				"ranges":  [][]map[string]string{{{"subnet": networkSubnet(k, "{{NODE_INDEX}}")}}},
				"dataDir": "{{NODE_DIR}}/bench-ipam",
			},
		}},
	}, "", "  ")
}

// writeNetworks writes the config lists of networks 1..n into dir.
func writeNetworks(dir string, n int) error {
	for k := 1; k <= n; k++ {
		b, err := networkConflist(k)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, networkName(k)+".conflist"), b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// checkInside checks `ip -4 -o addr` output from inside a pod of the
// n-network arm on the node of index nodeIndex: eth0 has an address, net1..netN
// each one of its network's subnet, and there is no other netK.
func checkInside(out string, n int, nodeIndex int) error {
	addrs := map[string]string{}
	for line := range strings.SplitSeq(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[2] == "inet" {
			addrs[f[1]], _, _ = strings.Cut(f[3], "/")
		}
	}
	var errs []string
	if addrs["eth0"] == "" {
		errs = append(errs, "eth0 has no IPv4 address")
	}
	for k := 1; k <= n; k++ {
		ifname := "net" + strconv.Itoa(k)
		_, subnet, _ := net.ParseCIDR(networkSubnet(k, strconv.Itoa(nodeIndex)))
		if ip := net.ParseIP(addrs[ifname]); ip == nil || !subnet.Contains(ip) {
			errs = append(errs, fmt.Sprintf("%s has %q, want an address of %s (%s)", ifname, addrs[ifname], networkName(k), subnet))
		}
	}
	for ifname := range addrs {
		if k, err := strconv.Atoi(strings.TrimPrefix(ifname, "net")); strings.HasPrefix(ifname, "net") && err == nil && (k < 1 || k > n) {
			errs = append(errs, fmt.Sprintf("unexpected interface %s", ifname))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s in:\n%s", strings.Join(errs, "; "), strings.TrimSpace(out))
	}
	return nil
}
