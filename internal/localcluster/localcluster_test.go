package localcluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"

	"sigs.k8s.io/pod-networks/internal/ociimage"
)

func testOptions(t *testing.T) Options {
	t.Helper()
	o := DefaultOptions(t.TempDir())
	o.RunDir = "/run/pn-test"
	return o
}

func TestValidate(t *testing.T) {
	netDir := t.TempDir()
	for _, tc := range []struct {
		name string
		edit func(*Options)
		want string // substring of the error; "" means valid
	}{
		{"defaults", func(*Options) {}, ""},
		{"zero nodes", func(o *Options) { o.Nodes = 0 }, "nodes: 0 is out of range"},
		{"too many nodes", func(o *Options) { o.Nodes = 51 }, "nodes: 51 is out of range"},
		{"relative state dir", func(o *Options) { o.StateDir = "cluster" }, `state dir: "cluster" is not an absolute path`},
		{"long run dir", func(o *Options) { o.RunDir = "/run/" + strings.Repeat("x", 40) }, "too long for containerd's shim socket dir"},
		{"networks of a known node", func(o *Options) { o.NodeNetworks = map[string]string{"node2": netDir} }, ""},
		{"networks of an unknown node", func(o *Options) { o.NodeNetworks = map[string]string{"node3": netDir} }, `unknown node "node3"`},
		{"networks dir missing", func(o *Options) { o.NodeNetworks = map[string]string{"node1": "/nonexistent"} }, `"/nonexistent" is not a directory`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t)
			tc.edit(&o)
			err := o.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Validate() = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// Nodes on one machine must not share anything host-wide.
func TestNodesAreSeparate(t *testing.T) {
	o := testOptions(t)
	o.Nodes = maxNodes
	seen := map[string]string{}
	for _, n := range o.nodes() {
		if len(n.Bridge) > 15 {
			t.Errorf("%s: bridge name %q exceeds IFNAMSIZ", n.Name, n.Bridge)
		}
		for what, v := range map[string]string{
			"dir": n.Dir, "run dir": n.RunDir, "bridge": n.Bridge, "subnet": n.Subnet, "cgroup": n.CgroupRoot,
			"port": fmt.Sprint(n.KubeletPort), "healthz port": fmt.Sprint(n.HealthzPort),
		} {
			key := what + "=" + v
			if other, dup := seen[key]; dup {
				t.Errorf("%s and %s share %s %q", other, n.Name, what, v)
			}
			seen[key] = n.Name
		}
		if n.HealthzPort == o.KubeletPort+10*(n.Index-2) || n.HealthzPort == n.KubeletPort {
			t.Errorf("%s: healthz port %d collides with a kubelet port", n.Name, n.HealthzPort)
		}
	}
}

// The kubelet configuration must decode strictly into the upstream type: a
// misspelt field would otherwise be a setting silently not applied.
func TestKubeletConfigIsStrictlyValid(t *testing.T) {
	o := testOptions(t)
	n := o.nodes()[1]
	var b bytes.Buffer
	if err := kubeletConfig.Execute(&b, map[string]any{"Node": n, "CA": "/ca.crt", "CRIEndpoint": "unix:///x.sock"}); err != nil {
		t.Fatal(err)
	}
	var cfg kubeletv1beta1.KubeletConfiguration
	if err := yaml.UnmarshalStrict(b.Bytes(), &cfg); err != nil {
		t.Fatalf("kubelet config does not decode strictly: %v\n%s", err, b.String())
	}
	if cfg.CgroupRoot != n.CgroupRoot || cfg.Port != int32(n.KubeletPort) || cfg.PodLogsDir != filepath.Join(n.Dir, "pod-logs") {
		t.Errorf("per-node settings lost: cgroupRoot %q port %d podLogsDir %q", cfg.CgroupRoot, cfg.Port, cfg.PodLogsDir)
	}
	if cfg.MakeIPTablesUtilChains == nil || *cfg.MakeIPTablesUtilChains || cfg.FailCgroupV1 == nil || *cfg.FailCgroupV1 {
		t.Errorf("makeIPTablesUtilChains and failCgroupV1 must be false")
	}
}

func TestContainerdConfigKeepsNodesApart(t *testing.T) {
	o := testOptions(t)
	n := o.nodes()[0]
	var b bytes.Buffer
	if err := containerdConfig.Execute(&b, map[string]any{"Node": n, "PauseImage": "localhost/p:v1", "Runc": "/usr/sbin/runc", "CNIBinDir": "/cni"}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"root = '" + n.Dir + "/containerd/root'",
		"address = '" + n.ContainerdSocket() + "'",
		"socket_dir = '" + n.RunDir + "/s'",
		"Root = '" + n.RunDir + "/runc'",
		"conf_dir = '" + n.CNIConfDir() + "'",
		"restrict_oom_score_adj = true",
		"netns_mounts_under_state_dir = true",
		"sandbox = 'localhost/p:v1'",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("containerd config lacks %q", want)
		}
	}
}

func TestPrimaryNetwork(t *testing.T) {
	o := testOptions(t)
	n := o.nodes()[1]
	b, err := primaryNetwork(n)
	if err != nil {
		t.Fatal(err)
	}
	var conf struct {
		Name    string
		Plugins []struct {
			Type, Bridge string
			IPAM         struct {
				DataDir string
				Ranges  [][]struct{ Subnet string }
			}
		}
	}
	if err := json.Unmarshal(b, &conf); err != nil {
		t.Fatal(err)
	}
	p := conf.Plugins[0]
	if p.Type != "bridge" || p.Bridge != "pnbr2" || p.IPAM.Ranges[0][0].Subnet != "10.244.2.0/24" ||
		!strings.HasPrefix(p.IPAM.DataDir, n.Dir+"/") {
		t.Errorf("primary network of node2 = %s", b)
	}
}

func TestParseIPAddr(t *testing.T) {
	got, err := parseIPAddr("2: eth0    inet 10.244.1.2/24 brd 10.244.1.255 scope global eth0\\       valid_lft forever\n")
	if err != nil || got != "10.244.1.2" {
		t.Errorf("parseIPAddr = %q, %v", got, err)
	}
	if _, err := parseIPAddr("2: eth0 mtu 1500"); err == nil {
		t.Error("parseIPAddr without an address: want an error")
	}
}

func TestIPTablesRulesIgnoreCounters(t *testing.T) {
	a := iptablesRules("iptables-save", "# Generated\n*filter\n:INPUT ACCEPT [10:200]\n-A INPUT -j KUBE-FIREWALL\nCOMMIT\n")
	b := iptablesRules("iptables-save", "# Generated later\n*filter\n:INPUT ACCEPT [99:9999]\n-A INPUT -j KUBE-FIREWALL\nCOMMIT\n")
	if strings.Join(a, "|") != strings.Join(b, "|") || len(a) != 2 {
		t.Errorf("rules differ only by counters: %q vs %q", a, b)
	}
}

func TestHostStateDiff(t *testing.T) {
	before := HostState{Links: []string{"lo", "eth0"}, Sysctls: map[string]string{"net.ipv4.ip_forward": "0"}}
	after := HostState{Links: []string{"lo", "eth0", "pnbr1"}, Sysctls: map[string]string{"net.ipv4.ip_forward": "1"},
		Cgroups: []string{"/sys/fs/cgroup/pids/pod-networks-node1"}}
	d := strings.Join(before.Diff(after), "\n")
	for _, want := range []string{"link added: pnbr1", "sysctl net.ipv4.ip_forward: 0 -> 1", "cgroup added: /sys/fs/cgroup/pids/pod-networks-node1"} {
		if !strings.Contains(d, want) {
			t.Errorf("diff lacks %q:\n%s", want, d)
		}
	}
	if d := before.Diff(before); len(d) != 0 {
		t.Errorf("a state differs from itself: %v", d)
	}
}

func TestArchiveRef(t *testing.T) {
	dir := t.TempDir()
	var b bytes.Buffer
	if _, err := ociimage.WriteArchive(&b, ociimage.PauseImage("localhost/pod-networks/pause:v9", []byte("x"))); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "pause.tar")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	if ref, err := archiveRef(path); err != nil || ref != "localhost/pod-networks/pause:v9" {
		t.Errorf("archiveRef = %q, %v", ref, err)
	}
	if _, err := archiveRef(filepath.Join(dir, "missing.tar")); err == nil || !strings.Contains(err.Error(), "make images") {
		t.Errorf("archiveRef of a missing archive = %v, want a hint to run make images", err)
	}
}

func TestUnescapeMount(t *testing.T) {
	if got := unescapeMount(`/a\040b`); got != "/a b" {
		t.Errorf("unescapeMount = %q", got)
	}
}

func TestCheckPortsNamesTheBusyPort(t *testing.T) {
	o := testOptions(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	o.APIServerPort = l.Addr().(*net.TCPAddr).Port
	err = o.checkPorts()
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("port %d (kube-apiserver) is in use", o.APIServerPort)) {
		t.Errorf("checkPorts = %v, want the apiserver port named", err)
	}
}
