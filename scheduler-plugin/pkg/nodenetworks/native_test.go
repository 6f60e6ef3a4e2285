//go:build podnetworks_native

package nodenetworks

import (
	"context"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// The native build (pod-networks-scheduler of the patched Kubernetes):
// spec.networks against status.networks only; the annotation against
// status.networks when the node reports any, else the node annotation.

const wantNodeEvents = fwk.Add | fwk.UpdateNodeAnnotation | fwk.UpdateNodeNetworks

func newTestPlugin(t testing.TB, always ...string) *Plugin {
	t.Helper()
	return newAnnotationPlugin(t, always...)
}

// node has status.networks and the annotation ("-": none).
func node(name, status, annotation string) *v1.Node {
	n := nativeNode(name, status)
	if annotation != "-" {
		n.Annotations = map[string]string{netrequest.AnnotationKey: annotation}
	}
	return n
}

const inStatus = ErrReasonMissing + " in status.networks: "

func TestNativeSourceRules(t *testing.T) {
	p := newTestPlugin(t)
	for _, tc := range []struct {
		name string
		pod  *v1.Pod
		node *v1.Node
		want string // "" fits, else the reason
	}{
		{"native pod, status has it", nativePodWith("red"), node("n", "red", "-"), ""},
		{"native pod, annotation only", nativePodWith("red"), node("n", "-", "red"), inStatus + "red"},
		{"native pod, annotation has it, status not", nativePodWith("red"), node("n", "blue", "red"), inStatus + "red"},
		{"native pod, status has it, annotation not", nativePodWith("red"), node("n", "red", "blue"), ""},
		{"annotation pod, annotation only", annotatedPod("red"), node("n", "-", "red"), ""},
		{"annotation pod, status only", annotatedPod("red"), node("n", "red", "-"), ""},
		{"annotation pod, status wins", annotatedPod("red"), node("n", "blue", "red"), inStatus + "red"},
		{"annotation pod, status wins even without", annotatedPod("blue,red"), node("n", "blue", "red"), inStatus + "red"},
		{"annotation pod, neither", annotatedPod("red"), node("n", "-", "blue"), inAnnotation + "red"},
		{"annotation pod, no networks at all", annotatedPod("red"), node("n", "-", "-"), inAnnotation + "red"},
		// spec.networks wins over the annotation of the same pod.
		{"both, spec read", withAnnotation(nativePodWith("red"), "blue"), node("n", "red", "-"), ""},
		{"both, spec read, rejected", withAnnotation(nativePodWith("blue"), "red"), node("n", "red", "-"), inStatus + "blue"},
	} {
		// Interned ahead (the informer) or not: the same answer.
		for _, seen := range []bool{false, true} {
			p := p
			if !seen {
				p = newTestPlugin(t)
			} else {
				p.sawNode(tc.node)
			}
			st := filter(t, p, tc.pod, tc.node)
			switch {
			case tc.want == "" && !st.IsSuccess():
				t.Errorf("%s (seen %v): %v, want fit", tc.name, seen, st)
			case tc.want != "" && (st.Code() != fwk.UnschedulableAndUnresolvable || st.Message() != tc.want):
				t.Errorf("%s (seen %v): %v %q, want %q", tc.name, seen, st.Code(), st.Message(), tc.want)
			}
		}
	}
}

func withAnnotation(p *v1.Pod, request string) *v1.Pod {
	p.Annotations = map[string]string{netrequest.AnnotationKey: request}
	return p
}

// spec.networks is read field by field: an interface name is never taken
// for part of a list of networks.
func TestNativeRequestIsStructural(t *testing.T) {
	p := newTestPlugin(t)
	pod := nativePodWith("blue")
	pod.Spec.Networks[0].InterfaceName = "a,red@x" // invalid, and not a request for red
	kind, names, err := p.required(pod)
	if err != nil || kind != nativePod || strings.Join(names, ",") != "blue" {
		t.Errorf("required = %v %v %v, want spec.networks [blue]", kind, names, err)
	}
	if st := filter(t, p, pod, node("n", "blue", "-")); !st.IsSuccess() {
		t.Errorf("pod asking for blue on a node with blue: %v", st)
	}
}

// PreFilter's reason names every source it read when no node fits.
func TestNativePreFilterReasonNamesSources(t *testing.T) {
	p := newTestPlugin(t)
	nodes := []fwk.NodeInfo{nodeInfo(node("n0", "blue", "-")), nodeInfo(node("n1", "-", "blue"))}
	for _, tc := range []struct {
		pod  *v1.Pod
		want string
	}{
		{nativePodWith("red"), inStatus + "red"},
		{annotatedPod("red"), ErrReasonMissing + " in status.networks or annotation " + netrequest.AnnotationKey + ": red"},
	} {
		_, st := p.PreFilter(context.Background(), framework.NewCycleState(), tc.pod, nodes)
		if st.Code() != fwk.UnschedulableAndUnresolvable || st.Message() != tc.want {
			t.Errorf("PreFilter = %v %q, want %q", st.Code(), st.Message(), tc.want)
		}
	}
}

// Native and annotation pods asking for the same networks fit different
// nodes: the cache keeps them apart, and sees a change of either source.
func TestNativeFitCacheBySource(t *testing.T) {
	p := newTestPlugin(t)
	a, b := node("a", "-", "x"), node("b", "x", "-")
	p.sawNode(a)
	p.sawNode(b)
	prefilter := func(pod *v1.Pod, nodes ...*v1.Node) string {
		var infos []fwk.NodeInfo
		for _, n := range nodes {
			infos = append(infos, nodeInfo(n))
		}
		res, st := p.PreFilter(context.Background(), framework.NewCycleState(), pod, infos)
		if !st.IsSuccess() {
			return st.Message()
		}
		return strings.Join(sets.List(res.NodeNames), ",")
	}
	for range 2 { // the second time from the cache
		if got := prefilter(nativePodWith("x"), a, b); got != "b" {
			t.Errorf("native pod: %s, want b", got)
		}
		if got := prefilter(annotatedPod("x"), a, b); got != "a,b" {
			t.Errorf("annotation pod: %s, want a,b", got)
		}
	}
	// The network moves from a's annotation to its status: a value-only
	// view ("x" before and after) would miss it.
	a = node("a", "x", "-")
	p.sawNode(a)
	if got := prefilter(nativePodWith("x"), a, b); got != "a,b" {
		t.Errorf("native pod after a reports x in status: %s, want a,b", got)
	}
	// a's status now lists y, its annotation x: status wins for every pod.
	a = node("a", "y", "x")
	p.sawNode(a)
	if got := prefilter(annotatedPod("x"), a, b); got != "b" {
		t.Errorf("annotation pod after a reports y in status: %s, want b", got)
	}
}

func TestNativeQueueingHints(t *testing.T) {
	p := newTestPlugin(t)
	logger := klog.Background()
	for _, tc := range []struct {
		name     string
		pod      *v1.Pod
		old, new *v1.Node
		want     fwk.QueueingHint
	}{
		{"native pod, gains it in status", nativePodWith("x"), node("n", "-", "-"), node("n", "x", "-"), fwk.Queue},
		{"native pod, gains it in the annotation", nativePodWith("x"), node("n", "-", "-"), node("n", "-", "x"), fwk.QueueSkip},
		{"native pod, moves to status", nativePodWith("x"), node("n", "-", "x"), node("n", "x", "x"), fwk.Queue},
		{"annotation pod, gains it in the annotation", annotatedPod("x"), node("n", "-", "-"), node("n", "-", "x"), fwk.Queue},
		{"annotation pod, gains it in the annotation, status lacks it", annotatedPod("x"), node("n", "y", "-"), node("n", "y", "x"), fwk.QueueSkip},
		{"annotation pod, moves to status", annotatedPod("x"), node("n", "-", "x"), node("n", "x", "-"), fwk.QueueSkip},
	} {
		got, err := p.isSchedulableAfterNodeChange(logger, tc.pod, tc.old, tc.new)
		if err != nil || got != tc.want {
			t.Errorf("%s: hint = %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
	// A pod whose request moves from the annotation to spec.networks reads
	// other node sources.
	if got, _ := p.isSchedulableAfterPodChange(logger, nativePodWith("x"), annotatedPod("x"), nativePodWith("x")); got != fwk.Queue {
		t.Errorf("request moved to spec.networks: hint %v, want Queue", got)
	}
}

func TestNativeSignPod(t *testing.T) {
	p := newTestPlugin(t)
	if a, b := sign(t, p, nativePodWith("x")), sign(t, p, annotatedPod("x")); a == b {
		t.Errorf("native and annotation pods sign alike (%s): they fit different nodes", a)
	}
}

// Filter allocates nothing on a fit from either source.
func TestNativeFilterAllocatesNothing(t *testing.T) {
	p := newTestPlugin(t)
	ctx := context.Background()
	for _, tc := range []struct {
		pod  *v1.Pod
		node *v1.Node
	}{
		{nativePodWith("x"), node("n", "a,x", "-")},
		{annotatedPod("x"), node("n", "a,x", "-")},
		{annotatedPod("x"), node("n", "-", "a,x")},
	} {
		p.sawNode(tc.node)
		ni := nodeInfo(tc.node)
		cs := framework.NewCycleState()
		if _, st := p.PreFilter(ctx, cs, tc.pod, nil); !st.IsSuccess() {
			t.Fatal(st)
		}
		if allocs := testing.AllocsPerRun(1000, func() { p.Filter(ctx, cs, tc.pod, ni) }); allocs != 0 {
			t.Errorf("Filter allocates %.1f times per fitting node, want 0", allocs)
		}
	}
}
