package localcluster

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fakeProxyEnv makes the test binary act as a CRI proxy that serves
// /healthz on its -metrics-address until killed.
const fakeProxyEnv = "LOCALCLUSTER_FAKE_CRI_PROXY"

func TestMain(m *testing.M) {
	if os.Getenv(fakeProxyEnv) == "1" {
		fakeProxy()
		return
	}
	os.Exit(m.Run())
}

func fakeProxy() {
	var addr string
	for _, a := range os.Args {
		if v, ok := strings.CutPrefix(a, "-metrics-address="); ok {
			addr = v
		}
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("fake cri-proxy serving", addr)
	go func() { _ = http.Serve(l, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {})) }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM)
	<-sig
}

// faultCluster is a cluster whose node1 proxy is the fake above.
func faultCluster(t *testing.T) *Cluster {
	t.Helper()
	o := testOptions(t)
	o.Nodes = 1
	o.BinDir = t.TempDir()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf("#!/bin/sh\n%s=1 exec %q \"$@\"\n", fakeProxyEnv, self)
	if err := os.WriteFile(filepath.Join(o.BinDir, "cri-proxy"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	o.KubeletPort = port - 5 // node1's proxy port
	c := newCluster(o)
	for _, d := range []string{c.l.pidDir(), c.l.logDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { c.run.stop("node1-cri-proxy", time.Second) })
	return c
}

func TestKillAndStartProxy(t *testing.T) {
	c := faultCluster(t)
	ctx := t.Context()
	if err := c.KillProxy("node1"); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Errorf("KillProxy with no proxy = %v, want not running", err)
	}
	if err := c.StartProxy(ctx, "node1"); err != nil {
		t.Fatalf("StartProxy: %v", err)
	}
	first := c.run.recorded("node1-cri-proxy")
	if first == nil || !first.alive() {
		t.Fatal("no live proxy recorded after StartProxy")
	}
	if err := c.StartProxy(ctx, "node1"); err == nil || !strings.Contains(err.Error(), "is running") {
		t.Errorf("StartProxy of a running proxy = %v, want an error", err)
	}
	if err := c.KillProxy("node1"); err != nil {
		t.Fatalf("KillProxy: %v", err)
	}
	if first.alive() {
		t.Error("proxy alive after KillProxy returned")
	}
	if r := c.run.recorded("node1-cri-proxy"); r != nil {
		t.Errorf("pid file of a killed proxy left: %+v", r)
	}
	if err := c.StartProxy(ctx, "node1"); err != nil {
		t.Fatalf("StartProxy after a kill: %v", err)
	}
	if err := httpOK(ctx, httpClient, fmt.Sprintf("http://127.0.0.1:%d/healthz", c.l.nodes[0].ProxyPort)); err != nil {
		t.Errorf("healthz after restart: %v", err)
	}
	// Both lives are in the log, with the same arguments.
	b, err := os.ReadFile(c.LogPath("node1-cri-proxy"))
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	if strings.Count(log, "fake cri-proxy serving") != 2 || strings.Count(log, "# restarted at ") != 2 {
		t.Errorf("log does not show two starts:\n%s", log)
	}
	var argLines []string
	for _, l := range strings.Split(log, "\n") {
		if strings.HasPrefix(l, "# /") {
			argLines = append(argLines, l)
		}
	}
	if len(argLines) != 2 || argLines[0] != argLines[1] || !strings.Contains(argLines[0], "-state-dir=") {
		t.Errorf("command lines of the two starts differ or are missing: %q", argLines)
	}
	if err := c.KillProxy("node9"); err == nil || !strings.Contains(err.Error(), `no node "node9"`) {
		t.Errorf("KillProxy(node9) = %v", err)
	}
}

func TestStartProxyFailureNamesTheLog(t *testing.T) {
	c := faultCluster(t)
	if err := os.WriteFile(filepath.Join(c.BinDir, "cri-proxy"), []byte("#!/bin/sh\necho no way >&2\nexit 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := c.StartProxy(t.Context(), "node1")
	if err == nil || !strings.Contains(err.Error(), c.LogPath("node1-cri-proxy")) || !strings.Contains(err.Error(), "no way") {
		t.Errorf("StartProxy of a proxy that exits = %v, want its log named and quoted", err)
	}
}

func TestNodeState(t *testing.T) {
	c := newCluster(testOptions(t))
	n := c.l.nodes[0]
	ipam := filepath.Join(n.Dir, "ipam")
	files := map[string]string{
		"networks/blue.conflist": `{"cniVersion": "1.1.0", "name": "blue", "plugins": [{"type": "bridge", "bridge": "pnblue1",
		  "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.251.1.0/24"}]], "dataDir": "` + ipam + `"}}]}`,
		"networks/red.conflist": `{"cniVersion": "1.0.0", "name": "red", "plugins": [{"type": "ptp",
		  "ipam": {"type": "host-local", "subnet": "10.252.1.0/24", "dataDir": "` + ipam + `"}}, {"type": "tuning"}]}`,
		"networks/static.conf":      `{"cniVersion": "1.0.0", "name": "fixed", "type": "macvlan", "ipam": {"type": "static"}}`,
		"networks/broken.conflist":  `{"name": `,
		"networks/.hidden.conflist": `{"name": "hidden", "plugins": [{"type": "bridge", "ipam": {"type": "host-local"}}]}`,
		"cni/net.d/10-primary.conflist": `{"cniVersion": "1.1.0", "name": "primary-node1", "plugins": [{"type": "bridge", "bridge": "pnbr1",
		  "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.1.0/24"}]], "dataDir": "` + ipam + `"}}]}`,
		"ipam/primary-node1/10.244.1.7":             "sb1",
		"ipam/blue/10.251.1.2":                      "sb1",
		"ipam/blue/10.251.1.3":                      "sb2",
		"ipam/blue/last_reserved_ip.0":              "10.251.1.3",
		"ipam/blue/lock":                            "",
		"ipam/red/10.252.1.2":                       "sb1",
		"cri-proxy/sb1.json":                        "{}",
		"cri-proxy/.sb2.123.tmp":                    "{",
		"cri-proxy/intents/sb3.json":                "{}",
		"cri-proxy/cni-cache/results/blue-sb1-net1": "{}",
	}
	for name, body := range files {
		p := filepath.Join(n.Dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	s, err := c.NodeState("node1")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Leases["blue"], []string{"10.251.1.2", "10.251.1.3"}) || !slices.Equal(s.Leases["red"], []string{"10.252.1.2"}) {
		t.Errorf("leases = %v", s.Leases)
	}
	if _, ok := s.Leases["fixed"]; ok {
		t.Errorf("a network without host-local has leases: %v", s.Leases)
	}
	if !slices.Equal(s.Leases["primary-node1"], []string{"10.244.1.7"}) {
		t.Errorf("leases of the primary network = %v", s.Leases["primary-node1"])
	}
	// Teardown deletes the bridges of bridge plugins only, from valid files.
	if got := bridgesOf(n.NetworksDir()); !slices.Equal(got, []string{"pnblue1"}) {
		t.Errorf("bridgesOf = %q, want [pnblue1]", got)
	}
	if s.LeaseCount() != 4 {
		t.Errorf("LeaseCount = %d, want 4", s.LeaseCount())
	}
	if !slices.Equal(s.ProxyRecords, []string{"sb1.json"}) || !slices.Equal(s.ProxyIntents, []string{"sb3.json"}) {
		t.Errorf("proxy records %v, intents %v", s.ProxyRecords, s.ProxyIntents)
	}
	// Links are read from the live host (a running cluster's node1 has
	// these subnets): their selection is TestNodeLinks's, on fixed input.
	links := len(s.Links)
	want := Counts{Leases: "blue=2,primary-node1=1,red=1", Links: links, ProxyRecords: 1, ProxyIntents: 1}
	if got := s.Counts(); got != want {
		t.Errorf("Counts = %+v, want %+v", got, want)
	}
	if got, want := s.Counts().String(), fmt.Sprintf("leases blue=2,primary-node1=1,red=1, links %d, netns 0, proxy records 1, intents 1", links); got != want {
		t.Errorf("Counts.String = %q, want %q", got, want)
	}
	// A lease released and a record added show in the diff.
	if err := os.Remove(filepath.Join(ipam, "red", "10.252.1.2")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(n.Dir, "cri-proxy", "sb4.json"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	after, err := c.NodeState("node1")
	if err != nil {
		t.Fatal(err)
	}
	d := strings.Join(s.Diff(after), "\n")
	if d != "lease red removed: 10.252.1.2\nproxy record added: sb4.json" {
		t.Errorf("diff = %q", d)
	}
	if _, err := c.NodeState("node7"); err == nil {
		t.Error("NodeState of an unknown node: want an error")
	}
}

func TestNodeStateOfANodeWithNothing(t *testing.T) {
	s, err := newCluster(testOptions(t)).NodeState("node2")
	if err != nil {
		t.Fatal(err)
	}
	if got := s.Counts(); got != (Counts{}) {
		t.Errorf("counts of an empty node = %+v", got)
	}
	if got := s.Counts().String(); got != "leases -, links 0, netns 0, proxy records 0, intents 0" {
		t.Errorf("Counts.String = %q", got)
	}
}

func TestNodeLinks(t *testing.T) {
	out := []byte(`[
 {"ifname": "lo", "linkinfo": null, "addr_info": [{"family": "inet", "local": "127.0.0.1"}]},
 {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "10.0.0.5"}]},
 {"ifname": "pnbr1", "linkinfo": {"info_kind": "bridge"}, "addr_info": [{"family": "inet", "local": "10.244.1.1"}]},
 {"ifname": "pnblue1", "linkinfo": {"info_kind": "bridge"}},
 {"ifname": "pnblue2", "linkinfo": {"info_kind": "bridge"}},
 {"ifname": "veth1", "master": "pnbr1", "linkinfo": {"info_kind": "veth"}},
 {"ifname": "veth2", "master": "pnblue1", "linkinfo": {"info_kind": "veth"}},
 {"ifname": "veth3", "master": "pnblue2", "linkinfo": {"info_kind": "veth"}},
 {"ifname": "veth4", "linkinfo": {"info_kind": "veth"}, "addr_info": [{"family": "inet", "local": "10.252.1.1"}, {"family": "inet6", "local": "fe80::1"}]},
 {"ifname": "veth5", "linkinfo": {"info_kind": "veth"}, "addr_info": [{"family": "inet", "local": "10.252.2.1"}]},
 {"ifname": "veth6", "linkinfo": {"info_kind": "veth"}}
]`)
	got, err := nodeLinks(out, []string{"pnbr1", "pnblue1"}, []string{"10.244.1.0/24", "10.252.1.0/24"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"pnblue1 (bridge)", "pnbr1 (bridge)", "veth1 (veth)", "veth2 (veth)", "veth4 (veth)"}
	if !slices.Equal(got, want) {
		t.Errorf("nodeLinks = %q, want %q", got, want)
	}
	if _, err := nodeLinks([]byte("not json"), nil, nil); err == nil {
		t.Error("nodeLinks of garbage: want an error")
	}
}

func TestNSFSMountsUnder(t *testing.T) {
	mi := `22 1 0:21 / /proc rw,nosuid - proc proc rw
301 25 0:4 net:[4026532291] /x/nodes/node1/containerd/state/io.containerd.grpc.v1.cri/netns/cni-1 rw shared:5 - nsfs nsfs rw
302 25 0:4 net:[4026532292] /x/nodes/node1/containerd/state/io.containerd.grpc.v1.cri/netns/cni-2 rw - nsfs nsfs rw
303 25 0:4 net:[4026532293] /x/nodes/node10/containerd/state/netns/cni-3 rw - nsfs nsfs rw
304 25 0:4 net:[4026532294] /run/netns/other rw - nsfs nsfs rw
305 25 0:50 / /x/nodes/node1/containerd/root/overlay rw - overlay overlay rw
306 25 0:4 net:[4026532295] /x/nodes/node1/a\040b/cni-4 rw - nsfs nsfs rw
`
	got, err := nsfsMountsUnder(strings.NewReader(mi), "/x/nodes/node1")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/x/nodes/node1/a b/cni-4", "/x/nodes/node1/containerd/state/io.containerd.grpc.v1.cri/netns/cni-1", "/x/nodes/node1/containerd/state/io.containerd.grpc.v1.cri/netns/cni-2"}
	if !slices.Equal(got, want) {
		t.Errorf("nsfsMountsUnder = %q, want %q", got, want)
	}
}

func TestRestartContainerdNeedsARunningOne(t *testing.T) {
	c := faultCluster(t)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if err := c.RestartContainerd(ctx, "node1"); err == nil || !strings.Contains(err.Error(), "node1-containerd is not running") {
		t.Errorf("RestartContainerd with none running = %v", err)
	}
}

func TestExited(t *testing.T) {
	st, err := startTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if exited(os.Getpid(), st) {
		t.Error("exited(self) = true")
	}
	if !exited(os.Getpid(), st+1) {
		t.Error("exited with another start time (pid reused) = false")
	}
	if !exited(1<<30, 0) {
		t.Error("exited of a pid that does not exist = false")
	}
	state, start, err := parseStat([]byte("42 (a (weird) name) Z 1 42 42 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 12345 0 0"))
	if err != nil || state != "Z" || start != 12345 {
		t.Errorf("parseStat = %q, %d, %v", state, start, err)
	}
}
