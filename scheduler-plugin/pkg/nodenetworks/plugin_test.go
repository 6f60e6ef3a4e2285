package nodenetworks

import (
	"context"
	"fmt"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
)

// These tests run in every build. The build's test helpers
// (helpers_*_test.go) say how a pod asks (podWith: the text form
// name[@interface],... turned into the annotation or spec.networks) and
// how a node lists its networks (nodeWith, "-" for none), and where the
// build reads them for such pods and nodes (readFrom).

func nodeInfo(n *v1.Node) fwk.NodeInfo {
	ni := framework.NewNodeInfo()
	ni.SetNode(n)
	return ni
}

// missing is the reason a node read from readFrom lacks names.
func missing(names string) string {
	return ErrReasonMissing + " in " + readFrom + ": " + names
}

// filter runs PreFilter then Filter, as the framework does.
func filter(t testing.TB, p *Plugin, pod *v1.Pod, n *v1.Node) *fwk.Status {
	t.Helper()
	cs := framework.NewCycleState()
	if _, st := p.PreFilter(context.Background(), cs, pod, nil); !st.IsSuccess() {
		return st
	}
	return p.Filter(context.Background(), cs, pod, nodeInfo(n))
}

func TestPreFilter(t *testing.T) {
	p := newTestPlugin(t, "mgmt")
	for _, tc := range []struct {
		request string
		code    fwk.Code
	}{
		{"", fwk.Skip},
		{"mgmt", fwk.Skip},              // every node has it
		{"blue", fwk.Success},           // Filter decides
		{"blue@net5,mgmt", fwk.Success}, // still needs blue
	} {
		_, st := p.PreFilter(context.Background(), framework.NewCycleState(), podWith(tc.request), nil)
		if st.Code() != tc.code {
			t.Errorf("PreFilter(%q) = %v %q, want %v", tc.request, st.Code(), st.Message(), tc.code)
		}
	}
}

func TestPreFilterNarrowsNodes(t *testing.T) {
	p := newTestPlugin(t)
	var nodes []fwk.NodeInfo
	for i, nets := range []string{"blue,red", "blue", "-", "blue,green,red"} {
		nodes = append(nodes, nodeInfo(nodeWith(fmt.Sprintf("n%d", i), nets)))
	}
	res, st := p.PreFilter(context.Background(), framework.NewCycleState(), podWith("red,blue@x"), nodes)
	if !st.IsSuccess() || res.AllNodes() || strings.Join(sortedNames(res), ",") != "n0,n3" {
		t.Errorf("PreFilter = %v, %v; want nodes n0 and n3", res, st)
	}
	_, st = p.PreFilter(context.Background(), framework.NewCycleState(), podWith("green,yellow"), nodes)
	if st.Code() != fwk.UnschedulableAndUnresolvable || st.Message() != missing("green, yellow") {
		t.Errorf("PreFilter with no fitting node = %v %q, want %q", st.Code(), st.Message(), missing("green, yellow"))
	}
	_, st = p.PreFilter(context.Background(), framework.NewCycleState(), podWith("blue"), []fwk.NodeInfo{})
	if want := ErrReasonMissing + ": blue"; st.Code() != fwk.UnschedulableAndUnresolvable || st.Message() != want {
		t.Errorf("PreFilter without nodes = %v %q, want %q", st.Code(), st.Message(), want)
	}
}

func sortedNames(r *fwk.PreFilterResult) []string {
	return sets.List(r.NodeNames)
}

func TestFilter(t *testing.T) {
	p := newTestPlugin(t, "mgmt")
	for _, tc := range []struct {
		request, node string
		want          string // "" fits, else the reason
	}{
		{"blue", "blue,red", ""},
		{"blue,red@data0", "blue,red", ""},
		{"blue,mgmt", "blue", ""},
		{"blue", "red", missing("blue")},
		{"blue,green,red", "red", missing("blue, green")},
		{"blue", "-", missing("blue")}, // no networks
		{"neverseen", "blue", missing("neverseen")},
	} {
		st := filter(t, p, podWith(tc.request), nodeWith("n1", tc.node))
		switch {
		case tc.want == "" && !st.IsSuccess():
			t.Errorf("pod %q on node %q: %v, want fit", tc.request, tc.node, st)
		case tc.want != "" && (st.Code() != fwk.UnschedulableAndUnresolvable || st.Message() != tc.want):
			t.Errorf("pod %q on node %q: %v %q, want UnschedulableAndUnresolvable %q", tc.request, tc.node, st.Code(), st.Message(), tc.want)
		}
	}
}

// A node the informer has not shown yet is interned on demand; later values
// of the same node are seen too.
func TestFilterSeesNodeChanges(t *testing.T) {
	p := newTestPlugin(t)
	pod := podWith("x")
	if st := filter(t, p, pod, nodeWith("n1", "y")); st.IsSuccess() {
		t.Fatal("node without x fits")
	}
	p.sawNode(nodeWith("n1", "x,y"))
	if st := filter(t, p, pod, nodeWith("n1", "x,y")); !st.IsSuccess() {
		t.Fatalf("node with x: %v", st)
	}
}

func TestFilterWithoutPreFilterState(t *testing.T) {
	p := newTestPlugin(t)
	st := p.Filter(context.Background(), framework.NewCycleState(), podWith("blue"), nodeInfo(nodeWith("n1", "blue")))
	if st.Code() != fwk.Error {
		t.Errorf("Filter without PreFilter = %v, want Error", st)
	}
}

// sign returns the pod's signature fragment, or why it is unsigned.
func sign(t *testing.T, p *Plugin, pod *v1.Pod) string {
	t.Helper()
	f, st := p.SignPod(context.Background(), pod)
	if !st.IsSuccess() {
		return "unsigned: " + st.Code().String()
	}
	if len(f) != 1 || f[0].Key != SignerName {
		t.Fatalf("fragments = %v", f)
	}
	return fmt.Sprintf("%+v", f[0].Value)
}

func TestSignPod(t *testing.T) {
	p := newTestPlugin(t, "mgmt")
	// Same networks needed from a node, same signature, whatever the
	// interfaces, order or networks every node has.
	a, b := sign(t, p, podWith("red,blue@x")), sign(t, p, podWith("blue,mgmt,red@net9"))
	if a != b || !strings.HasSuffix(a, "Networks:[blue red]}") {
		t.Errorf("signatures %q and %q, want both with [blue red]", a, b)
	}
	if a, b := sign(t, p, podWith("")), sign(t, p, podWith("mgmt")); a != b || a != "{Request: Networks:[]}" {
		t.Errorf("signatures %q and %q, want both {Request: Networks:[]}", a, b)
	}
}

func TestQueueingHints(t *testing.T) {
	p := newTestPlugin(t, "mgmt")
	logger := klog.Background()
	pod := podWith("blue,red")
	for _, tc := range []struct {
		name     string
		old, new *v1.Node
		want     fwk.QueueingHint
	}{
		{"added with both", nil, nodeWith("n", "blue,red"), fwk.Queue},
		{"added without", nil, nodeWith("n", "blue"), fwk.QueueSkip},
		{"gains the last one", nodeWith("n", "blue"), nodeWith("n", "blue,red"), fwk.Queue},
		{"gains from nothing", nodeWith("n", "-"), nodeWith("n", "blue,green,red"), fwk.Queue},
		{"gains another but not all", nodeWith("n", "-"), nodeWith("n", "blue"), fwk.QueueSkip},
		{"had them already", nodeWith("n", "blue,red"), nodeWith("n", "blue,green,red"), fwk.QueueSkip},
		{"loses one", nodeWith("n", "blue,red"), nodeWith("n", "blue"), fwk.QueueSkip},
	} {
		got, err := p.isSchedulableAfterNodeChange(logger, pod, nodeObj(tc.old), tc.new)
		if err != nil || got != tc.want {
			t.Errorf("%s: hint = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}

	for _, tc := range []struct {
		old, new string
		want     fwk.QueueingHint
	}{
		{"blue", "blue", fwk.QueueSkip},
		{"blue", "blue@net7", fwk.QueueSkip}, // same networks needed
		{"blue", "blue,mgmt", fwk.QueueSkip}, // every node has mgmt
		{"blue", "red", fwk.Queue},
		{"blue", "", fwk.Queue},
	} {
		got, err := p.isSchedulableAfterPodChange(logger, podWith(tc.new), podWith(tc.old), podWith(tc.new))
		if err != nil || got != tc.want {
			t.Errorf("pod request %q -> %q: hint = %v, %v; want %v", tc.old, tc.new, got, err, tc.want)
		}
	}
	events, err := p.EventsToRegister(context.Background())
	if err != nil || len(events) == 0 || events[0].Event.Resource != fwk.Node || events[0].Event.ActionType != wantNodeEvents {
		t.Errorf("EventsToRegister = %v, %v; want first Node %v", events, err, wantNodeEvents)
	}
}

// nodeObj keeps a nil *v1.Node a nil interface, as the framework passes it.
func nodeObj(n *v1.Node) any {
	if n == nil {
		return nil
	}
	return n
}

func TestPreFilterCachesFitNodes(t *testing.T) {
	p := newTestPlugin(t)
	n0, n1 := nodeWith("n0", "blue"), nodeWith("n1", "red")
	p.sawNode(n0)
	p.sawNode(n1)
	prefilter := func(req string, nodes ...*v1.Node) (*fwk.PreFilterResult, *fwk.Status) {
		var infos []fwk.NodeInfo
		for _, n := range nodes {
			infos = append(infos, nodeInfo(n))
		}
		return p.PreFilter(context.Background(), framework.NewCycleState(), podWith(req), infos)
	}
	res, _ := prefilter("blue", n0, n1)
	if got := sets.List(res.NodeNames); strings.Join(got, ",") != "n0" {
		t.Fatalf("nodes = %v, want n0", got)
	}
	kind, _, _ := p.required(podWith("blue"))
	key := fitKey(kind, []string{"blue"})
	if cached, ok := p.fitCache.get(key, 2); !ok || !cached.Has("n0") {
		t.Fatalf("cache = %v, %v; want the result stored", cached, ok)
	}
	// The cache answers as long as nothing changed, even for a snapshot
	// it was not computed from: that is its point.
	if res, _ := prefilter("blue", nodeWith("n0", "blue"), nodeWith("n1", "red")); !res.NodeNames.Has("n0") {
		t.Errorf("second PreFilter = %v", res.NodeNames)
	}
	// A node gaining a network empties the cache.
	n1 = nodeWith("n1", "blue,red")
	p.sawNode(n1)
	if res, _ := prefilter("blue", n0, n1); strings.Join(sets.List(res.NodeNames), ",") != "n0,n1" {
		t.Errorf("after n1 gained blue: nodes = %v, want n0,n1", sets.List(res.NodeNames))
	}
	// A snapshot with a node the informer has not shown: the cache is not
	// used.
	if res, _ := prefilter("blue", n0, n1, nodeWith("n2", "blue")); strings.Join(sets.List(res.NodeNames), ",") != "n0,n1,n2" {
		t.Errorf("with a node the cache lacks: nodes = %v, want n0,n1,n2", sets.List(res.NodeNames))
	}
	// A cached empty answer never rejects: the snapshot is scanned again.
	p.fitCache.put(fitKey(kind, []string{"green"}), sets.New[string](), 2)
	if res, st := prefilter("green", n0, nodeWith("n1", "green")); !st.IsSuccess() || !res.NodeNames.Has("n1") {
		t.Errorf("PreFilter after a stale empty entry = %v, %v; want n1", res, st)
	}
	p.forgetNode(n1)
	if _, ok := p.fitCache.get(key, 1); ok {
		t.Error("cache entry survived a node deletion")
	}
}
