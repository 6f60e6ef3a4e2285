package localcluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	kubeschedulerv1 "k8s.io/kube-scheduler/config/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"sigs.k8s.io/yaml"
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
		{"skew of a known node", func(o *Options) { o.NodeSkew = map[string]NodeSkew{"node2": {NoCRIProxy: true}} }, ""},
		{"skew of an unknown node", func(o *Options) { o.NodeSkew = map[string]NodeSkew{"node9": {GateOff: true}} }, `node skew: unknown node "node9"`},
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
	for _, n := range newLayout(o).nodes {
		if len(n.Bridge) > 15 {
			t.Errorf("%s: bridge name %q exceeds IFNAMSIZ", n.Name, n.Bridge)
		}
		for what, v := range map[string]string{
			"dir": n.Dir, "run dir": n.RunDir, "bridge": n.Bridge, "subnet": n.Subnet, "cgroup": n.CgroupRoot,
			"port": fmt.Sprint(n.KubeletPort), "healthz port": fmt.Sprint(n.HealthzPort), "proxy port": fmt.Sprint(n.ProxyPort),
			"cri endpoint": n.CRIEndpoint,
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

// The kubelet configuration must decode strictly into the upstream type (a
// misspelt field would be a setting silently not applied), keep each node
// apart, and name the PodNetworks gate only to the patched kubelet (the
// stock one refuses a gate it does not know).
func TestKubeletConfig(t *testing.T) {
	for _, tc := range []struct {
		name          string
		patched, gate bool
		want          map[string]bool
	}{
		{"stock", false, false, nil},
		{"patched, gate on", true, true, map[string]bool{"PodNetworks": true}},
		{"patched, gate off", true, false, map[string]bool{"PodNetworks": false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(t)
			o.Patched, o.PodNetworksGate = tc.patched, tc.gate
			l := newLayout(o)
			n := l.nodes[1]
			b, err := yaml.Marshal(l.kubeletConfiguration(n))
			if err != nil {
				t.Fatal(err)
			}
			var cfg kubeletv1beta1.KubeletConfiguration
			if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
				t.Fatalf("kubelet config does not decode strictly: %v\n%s", err, b)
			}
			if cfg.Kind != "KubeletConfiguration" || cfg.APIVersion != "kubelet.config.k8s.io/v1beta1" {
				t.Errorf("type = %s/%s", cfg.APIVersion, cfg.Kind)
			}
			if cfg.CgroupRoot != n.CgroupRoot || cfg.Port != int32(n.KubeletPort) || *cfg.HealthzPort != int32(n.HealthzPort) ||
				cfg.PodLogsDir != filepath.Join(n.Dir, "pod-logs") || cfg.ContainerRuntimeEndpoint != "unix://"+n.ProxySocket() {
				t.Errorf("per-node settings lost:\n%s", b)
			}
			if *cfg.MakeIPTablesUtilChains || *cfg.FailCgroupV1 || *cfg.Authentication.Anonymous.Enabled || cfg.ReadOnlyPort != 0 {
				t.Errorf("makeIPTablesUtilChains, failCgroupV1 and anonymous auth must be false, the read-only port off:\n%s", b)
			}
			if !maps.Equal(cfg.FeatureGates, tc.want) {
				t.Errorf("featureGates = %v, want %v", cfg.FeatureGates, tc.want)
			}
		})
	}
}

func TestSchedulerConfig(t *testing.T) {
	o := testOptions(t)
	l := newLayout(o)
	b, err := l.schedulerConfig()
	if err != nil {
		t.Fatal(err)
	}
	var cfg kubeschedulerv1.KubeSchedulerConfiguration
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		t.Fatalf("scheduler config does not decode strictly: %v\n%s", err, b)
	}
	if cfg.ClientConnection.Kubeconfig != l.kubeconfig("scheduler") {
		t.Errorf("kubeconfig = %q, want the scheduler's", cfg.ClientConnection.Kubeconfig)
	}
	if len(cfg.Profiles) != 1 || len(cfg.Profiles[0].Plugins.Filter.Enabled) != 1 || cfg.Profiles[0].Plugins.Filter.Enabled[0].Name != "NodeNetworks" {
		t.Errorf("the NodeNetworks profile is lost:\n%s", b)
	}
	if !slices.Contains(l.scheduler().args, "--config="+l.schedulerConfigFile()) {
		t.Errorf("scheduler args %q lack --config", l.scheduler().args)
	}
	// A user's configuration with a misspelt field is refused, naming it.
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: kubescheduler.config.k8s.io/v1\nkind: KubeSchedulerConfiguration\nprofile: []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	o.SchedulerConfig = bad
	if _, err := newLayout(o).schedulerConfig(); err == nil || !strings.Contains(err.Error(), `"profile"`) {
		t.Errorf("misspelt scheduler config: err = %v, want the field named", err)
	}
	// The stock scheduler runs without a configuration file.
	o.SchedulerConfig, o.NetworkScheduler = "", false
	if args := newLayout(o).scheduler().args; !slices.Contains(args, "--leader-elect=false") || slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--config") }) {
		t.Errorf("stock scheduler args = %q", args)
	}
}

// Components start in dependency order: kubelet after the apiserver and,
// with a proxy, after its proxy; the admission policies (and the proxies'
// RBAC) are installed once the apiserver is ready, before anything else.
func TestComponentOrder(t *testing.T) {
	names := func(cs []component) (out []string) {
		for _, c := range cs {
			out = append(out, c.name)
		}
		return out
	}
	for _, proxy := range []bool{true, false} {
		o := testOptions(t)
		o.CRIProxy = proxy
		l := newLayout(o)
		cp, node := l.controlPlane(), l.nodeComponents(l.nodes[0])
		want := []string{"node1-containerd", "node1-kubelet"}
		if proxy {
			want = []string{"node1-containerd", "node1-cri-proxy", "node1-kubelet"}
		}
		if got := names(node); !slices.Equal(got, want) {
			t.Errorf("proxy %t: node components %q, want %q", proxy, got, want)
		}
		if got := names(cp); !slices.Equal(got, []string{"etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler"}) {
			t.Errorf("control plane %q", got)
		}
		if !cp[1].servesAPI || cp[1].then == nil || !node[len(node)-1].needsAPI || node[0].needsAPI {
			t.Errorf("proxy %t: API ordering flags wrong", proxy)
		}
		if got := l.nodes[0].CRIEndpoint; (got == "unix://"+l.nodes[0].ProxySocket()) != proxy {
			t.Errorf("proxy %t: kubelet's CRI endpoint %s", proxy, got)
		}
	}
}

// One cluster can mix nodes: each node's kubelet binary, gate, CRI
// endpoint and components follow its skew.
func TestNodeSkew(t *testing.T) {
	o := testOptions(t)
	o.Nodes = 4
	o.NodeSkew = map[string]NodeSkew{"node2": {NoCRIProxy: true}, "node3": {StockKubelet: true}, "node4": {GateOff: true}}
	l := newLayout(o)
	for i, want := range []struct {
		proxy   bool
		kubelet string
		gates   map[string]bool
	}{
		{true, filepath.Join(o.BinDir, "patched", "kubelet"), map[string]bool{"PodNetworks": true}},
		{false, filepath.Join(o.BinDir, "patched", "kubelet"), map[string]bool{"PodNetworks": true}},
		{true, filepath.Join(o.BinDir, "kubelet"), nil},
		{true, filepath.Join(o.BinDir, "patched", "kubelet"), map[string]bool{"PodNetworks": false}},
	} {
		n := l.nodes[i]
		var names []string
		for _, c := range l.nodeComponents(n) {
			names = append(names, c.name)
		}
		if got := slices.Contains(names, n.Name+"-cri-proxy"); got != want.proxy || (n.CRIEndpoint == "unix://"+n.ProxySocket()) != want.proxy {
			t.Errorf("%s: components %q, CRI endpoint %s; want proxy %v", n.Name, names, n.CRIEndpoint, want.proxy)
		}
		if got := l.kubelet(n).path; got != want.kubelet {
			t.Errorf("%s: kubelet %s, want %s", n.Name, got, want.kubelet)
		}
		if got := l.kubeletConfiguration(n).FeatureGates; !maps.Equal(got, want.gates) {
			t.Errorf("%s: feature gates %v, want %v", n.Name, got, want.gates)
		}
	}
}

// Down finds the nodes and CRI endpoints of the cluster Up made, whatever
// options it is given.
func TestAdoptSaved(t *testing.T) {
	o := testOptions(t)
	o.Nodes = 3
	l := newLayout(o)
	if err := os.MkdirAll(o.StateDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := l.save(); err != nil {
		t.Fatal(err)
	}
	o.Nodes, o.CRIProxy = 1, false
	got := newLayout(o).adoptSaved()
	if len(got.nodes) != 3 || got.nodes[2].CRIEndpoint != "unix://"+got.nodes[2].ProxySocket() {
		t.Errorf("adopted %d nodes, node3 endpoint %q", len(got.nodes), got.nodes[len(got.nodes)-1].CRIEndpoint)
	}
	empty := newLayout(testOptions(t))
	if got := empty.adoptSaved(); len(got.nodes) != 2 {
		t.Errorf("without a saved cluster: %d nodes, want the options' 2", len(got.nodes))
	}
}

func TestContainerdConfigKeepsNodesApart(t *testing.T) {
	n := newLayout(testOptions(t)).nodes[0]
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
	n := newLayout(testOptions(t)).nodes[1]
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

func TestCheckPortsNamesTheBusyPort(t *testing.T) {
	o := testOptions(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	o.APIServerPort = l.Addr().(*net.TCPAddr).Port
	err = newLayout(o).checkPorts()
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("port %d (kube-apiserver) is in use", o.APIServerPort)) {
		t.Errorf("checkPorts = %v, want the apiserver port named", err)
	}
}
