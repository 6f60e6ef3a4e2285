package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// fixedResult is a demo result as the default demo finds it: three nodes,
// the third without a CRI proxy.
func fixedResult() *DemoResult {
	return &DemoResult{
		BringUp: DemoBringUp{
			Nodes: 3, ReadySeconds: 14.38, TargetSeconds: 20,
			Steps: []DemoStep{
				{"certificates written", 0.41}, {"etcd healthy", 1.02}, {"kube-apiserver ready", 4.87},
				{"kube-controller-manager healthy", 6.1}, {"kube-scheduler healthy", 6.15},
				{"node1 containerd ready, images imported", 8.9}, {"node2 containerd ready, images imported", 9.02},
				{"node3 containerd ready, images imported", 9.05},
				{"node1 cri-proxy healthy", 9.3}, {"node2 cri-proxy healthy", 9.31},
				{"node1 kubelet healthy", 11.7}, {"node2 kubelet healthy", 11.74}, {"node3 kubelet healthy", 11.8},
				{"all nodes Ready", 14.38},
			},
		},
		Pods: DemoPods{
			Pods: []DemoPod{
				{Name: "demo-node1", Node: "node1", Subnet: "10.244.1.0/24", StatusIP: "10.244.1.2", Eth0IP: "10.244.1.2"},
				{Name: "demo-node2", Node: "node2", Subnet: "10.244.2.0/24", StatusIP: "10.244.2.2", Eth0IP: "10.244.2.2"},
				{Name: "demo-node3", Node: "node3", Subnet: "10.244.3.0/24", StatusIP: "10.244.3.2", Eth0IP: "10.244.3.2"},
			},
			RunningSeconds: 3.24,
		},
		Networks: &DemoNetworks{
			Published: []DemoNodeNetworks{{"node1", []string{"blue", "broken", "red"}}, {"node2", []string{"blue"}}},
			Status:    []DemoNodeNetworks{{"node1", []string{"blue", "broken", "red"}}, {"node2", []string{"blue"}}, {"node3", []string{}}},
			Multi: DemoMultiPod{
				Pod: "demo-networks", Request: []string{"blue", "red"}, Node: "node1", RunningSeconds: 2.61,
				Inside: []DemoInterface{{"eth0", "10.244.1.3/24"}, {"net1", "10.251.1.2/24"}, {"net2", "10.252.1.2/24"}},
				Status: []DemoAttachment{
					{Interface: "eth0", Network: "primary", IPs: []string{"10.244.1.3"}, Default: true},
					{Interface: "net1", Network: "blue", IPs: []string{"10.251.1.2"}},
					{Interface: "net2", Network: "red", IPs: []string{"10.252.1.2"}},
				},
			},
			Native: &DemoNativePods{
				Pod: "demo-native", Request: []DemoNetworkRequest{{Name: "blue"}, {Name: "red", InterfaceName: "data0"}}, Node: "node1",
				RunningSeconds: 2.2, Inside: []DemoInterface{{"eth0", "10.244.1.4/24"}, {"net1", "10.251.1.3/24"}, {"data0", "10.252.1.3/24"}},
				Refused: &DemoRefusedPod{
					Pod: "demo-refused", Node: "node3", Request: []DemoNetworkRequest{{Name: "blue"}}, Phase: "Failed", Reason: "PodFeatureUnsupported",
					Message: "Pod was rejected: Pod requires node features that are not available: PodNetworks",
				},
			},
			Pending: DemoPendingPod{
				Pod: "demo-green", Request: []string{"green"},
				Reason:   "0/3 nodes are available: 3 node(s) didn't have the requested network(s) in annotation networking.x-k8s.io/networks: green. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling.",
				GainedBy: "node2", ScheduledOn: "node2", ScheduledSeconds: 0.734,
			},
			Broken: &DemoBrokenPod{
				Pod: "demo-broken", Request: []string{"broken"}, Node: "node1", Phase: "Pending", EventSeconds: 1.93,
				Event: `Failed to create pod sandbox: rpc error: code = Unknown desc = cri-proxy: network "broken" (net3): plugin type="tuning" failed (add): failed to set net.ipv4.conf.net3.no_such_setting: open /proc/sys/net/ipv4/conf/net3/no_such_setting: no such file or directory`,
			},
			Access: DemoAccess{
				Network: "red", Namespaces: []string{"team-a"}, Pod: "demo-access", Request: "red",
				Refused: DemoAccessRefused{Namespace: "team-b", Message: `pods "demo-access" is forbidden: ValidatingAdmissionPolicy 'pod-networks-access' with binding 'pod-networks-access' denied request: network red is not allowed in namespace team-b (Network red allows namespaces team-a)`},
				Admitted: DemoAccessAdmitted{
					Namespace: "team-a", Node: "node1", RunningSeconds: 1.12,
					Inside: []DemoInterface{{"eth0", "10.244.1.6/24"}, {"net1", "10.252.1.4/24"}},
				},
			},
		},
		Leases: DemoLeases{
			Deleted: []string{"demo-broken", "demo-green", "demo-native", "demo-networks", "demo-node1", "demo-node2", "demo-node3", "demo-refused", "team-a/demo-access"},
			Counts: []DemoLeaseCount{
				{"node1", "blue", 2, 0}, {"node1", "broken", 0, 0}, {"node1", "primary-node1", 4, 0}, {"node1", "red", 3, 0},
				{"node2", "blue", 0, 0}, {"node2", "green", 1, 0}, {"node2", "primary-node2", 2, 0}, {"node3", "primary-node3", 1, 0},
			},
			Before: 13, ReleasedSeconds: 1.46,
		},
		Next: DemoNext{
			Kubeconfig: "/src/_output/cluster/kubeconfig", Kubectl: "/src/_output/bin/patched/kubectl",
			ToolboxImage: "localhost/pod-networks/toolbox:v1", Logs: "/src/_output/cluster/logs/<component>.log",
		},
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to write it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the output at %s (if the change is meant, run go test ./hack/localcluster/app -update and review the diff):\n--- got\n%s\n--- want\n%s",
			path, firstDiff(string(got), string(want)), got, want)
	}
}

// firstDiff describes the first line where got and want differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl || i >= len(g) || i >= len(w) {
			return fmt.Sprintf("line %d: got %q, want %q", i+1, gl, wl)
		}
	}
	return "no line (the same lines)"
}

// TestRenderDemoGolden pins the demo's human output: a change of format
// shows up as a diff of testdata/demo.golden.
func TestRenderDemoGolden(t *testing.T) {
	var b bytes.Buffer
	if err := RenderDemo(&b, fixedResult()); err != nil {
		t.Fatal(err)
	}
	golden(t, "demo.golden", b.Bytes())
}

// TestRenderDemoWithoutNetworks: without the networks scenario (no CRI
// proxy, stock scheduler or no node networks) its sections and summary
// lines are absent, and so is the status section without the patched
// kubelet, and the broken one without the network.
func TestRenderDemoWithoutNetworks(t *testing.T) {
	r := fixedResult()
	r.Networks = nil
	var b bytes.Buffer
	if err := RenderDemo(&b, r); err != nil {
		t.Fatal(err)
	}
	golden(t, "demo-no-networks.golden", b.Bytes())

	r = fixedResult()
	r.Networks.Status, r.Networks.Broken = nil, nil
	b.Reset()
	if err := RenderDemo(&b, r); err != nil {
		t.Fatal(err)
	}
	golden(t, "demo-stock-kubelet.golden", b.Bytes())
}

// TestDemoResultJSON pins the result file's format and checks that it
// decodes strictly into the same value.
func TestDemoResultJSON(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", DemoResultFile)
	want := fixedResult()
	if err := writeDemoResult(path, want); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	golden(t, "demo-result.golden.json", b)
	if _, err := os.Stat(path + ".tmp"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the temporary file is left: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var got DemoResult
	if err := dec.Decode(&got); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&got, want) {
		t.Errorf("decoded result differs:\n got %+v\nwant %+v", got, *want)
	}

	if err := removeDemoResult(path); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the previous result is still there: %v", err)
	}
	if err := removeDemoResult(path); err != nil {
		t.Errorf("removing a result that is not there: %v", err)
	}
}

// TestDemoPrinterStreams: printing the sections as the demo completes them
// gives exactly RenderDemo's output, each section once.
func TestDemoPrinterStreams(t *testing.T) {
	r := fixedResult()
	var want bytes.Buffer
	if err := RenderDemo(&want, r); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	p := &demoPrinter{w: &got, r: r}
	for _, s := range []demoSection{sectionBringUp, sectionPods, sectionPublished, sectionStatus, sectionStatus, sectionMulti, sectionBroken, sectionLeases, numSections - 1} {
		if err := p.through(s); err != nil {
			t.Fatal(err)
		}
	}
	if got.String() != want.String() {
		t.Errorf("streamed output:\n%s\nwant:\n%s", got.String(), want.String())
	}
	for s, render := range demoSections {
		if render == nil {
			t.Errorf("section %d has no renderer", s)
		}
	}
}

func TestPodInterfaces(t *testing.T) {
	out := `1: lo    inet 127.0.0.1/8 scope host lo\       valid_lft forever preferred_lft forever
2: eth0    inet 10.244.1.3/24 brd 10.244.1.255 scope global eth0\       valid_lft forever preferred_lft forever
3: net1    inet 10.251.1.2/24 brd 10.251.1.255 scope global net1\       valid_lft forever preferred_lft forever
`
	want := []DemoInterface{{"eth0", "10.244.1.3/24"}, {"net1", "10.251.1.2/24"}}
	if got := podInterfaces(out); !reflect.DeepEqual(got, want) {
		t.Errorf("podInterfaces = %v, want %v", got, want)
	}
	if got := podInterfaces(""); len(got) != 0 {
		t.Errorf("podInterfaces of nothing = %v", got)
	}
}

func TestSplitNetworks(t *testing.T) {
	for v, want := range map[string][]string{"": {}, "blue": {"blue"}, "blue,broken,red": {"blue", "broken", "red"}} {
		if got := splitNetworks(v); !reflect.DeepEqual(got, want) {
			t.Errorf("splitNetworks(%q) = %#v, want %#v", v, got, want)
		}
	}
}

// TestResultJSONFlagIsTheDemos: only demo takes -result-json.
func TestResultJSONFlagIsTheDemos(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := Run(t.Context(), []string{"up", "-result-json", filepath.Join(t.TempDir(), "r.json")}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "result-json") {
		t.Errorf("up -result-json: %v, want the flag refused", err)
	}
}
