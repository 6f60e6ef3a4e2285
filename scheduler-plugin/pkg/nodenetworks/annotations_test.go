//go:build !podnetworks_intree

package nodenetworks

import (
	"context"
	"fmt"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"

	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// The annotations, in the builds that read them (stock and native).

const inAnnotation = ErrReasonMissing + " in annotation " + netrequest.AnnotationKey + ": "

func TestAnnotationRequestErrors(t *testing.T) {
	p := newAnnotationPlugin(t, "mgmt")
	for _, tc := range []struct {
		request string
		reason  string
	}{
		{"Blue", "invalid network request (annotation networking.x-k8s.io/networks)"},
		{"blue,blue", "blue"},
		{`[{"name": "blue"`, "invalid network request"},
	} {
		_, st := p.PreFilter(context.Background(), framework.NewCycleState(), annotatedPod(tc.request), nil)
		if st.Code() != fwk.UnschedulableAndUnresolvable || !strings.Contains(st.Message(), tc.reason) {
			t.Errorf("PreFilter(%q) = %v %q, want UnschedulableAndUnresolvable with %q", tc.request, st.Code(), st.Message(), tc.reason)
		}
	}
	if s := sign(t, p, annotatedPod("Bad!")); s != "unsigned: Unschedulable" {
		t.Errorf("malformed request signed: %s", s)
	}
	if got, _ := p.isSchedulableAfterNodeChange(klog.Background(), annotatedPod("Bad!"), nil, annotatedNode("n", "blue")); got != fwk.QueueSkip {
		t.Errorf("malformed pod queued by a node event: %v", got)
	}
	if got, _ := p.isSchedulableAfterPodChange(klog.Background(), annotatedPod("blue"), annotatedPod("Bad!"), annotatedPod("blue")); got != fwk.Queue {
		t.Errorf("pod fixing its request not queued: %v", got)
	}
}

// A hostile annotation, as large as the apiserver lets a pod's annotations
// be (256 KiB), gets a rejection that still names the problem but whose
// reasons, and the message joining them, are at most
// netrequest.MaxErrorLen (1 KiB): they end up in the pod's PodScheduled
// condition and events.
func TestHostileAnnotationReason(t *testing.T) {
	const size = 256 << 10
	p := newAnnotationPlugin(t)
	nodes := []fwk.NodeInfo{nodeInfo(annotatedNode("n1", "blue"))}
	for _, tc := range []struct {
		name, request, want string
	}{
		{"huge name", strings.Repeat("b", size), "name must be a DNS-1123 label"},
		{"thousands of bad entries", strings.Repeat("Bad_,", size/5) + "x", `networks[0] ("Bad_"): name must be a DNS-1123 label`},
		{"thousands of entries", strings.Repeat("blue,", size/5) + "red", "entries, at most 16 allowed"},
		{"huge unknown key", `[{"name":"blue","` + strings.Repeat("k", size) + `":1}]`, `networks[0] ("blue"): unknown key "kkkk`},
		{"huge cni-args", `[{"name":"blue","cni-args":{"k":"` + strings.Repeat("v", size) + `"}}]`, `networks[0] ("blue"): cni-args: `},
		{"JSON garbage", "[" + strings.Repeat("{", size), "invalid JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pod := annotatedPod(tc.request)
			_, pre := p.PreFilter(context.Background(), framework.NewCycleState(), pod, nodes)
			sig, _ := p.SignPod(context.Background(), pod)
			for what, st := range map[string]*fwk.Status{"PreFilter": pre, "PreFilter and Filter": filter(t, p, pod, annotatedNode("n1", "blue"))} {
				if st.Code() != fwk.UnschedulableAndUnresolvable {
					t.Errorf("%s: %v, want UnschedulableAndUnresolvable", what, st.Code())
				}
				for _, r := range append(st.Reasons(), st.Message()) {
					if len(r) > netrequest.MaxErrorLen {
						t.Errorf("%s: reason of %d bytes, more than %d: %.200q...", what, len(r), netrequest.MaxErrorLen, r)
					}
				}
				for _, s := range []string{"invalid network request (annotation " + netrequest.AnnotationKey + "): ", tc.want} {
					if !strings.Contains(st.Message(), s) {
						t.Errorf("%s: %q does not contain %q", what, st.Message(), s)
					}
				}
			}
			if sig != nil {
				t.Errorf("hostile request signed: %v", sig)
			}
		})
	}
}

// A node annotation that does not parse is a node without networks.
func TestMalformedNodeAnnotation(t *testing.T) {
	p := newAnnotationPlugin(t)
	st := filter(t, p, annotatedPod("blue"), annotatedNode("n1", "blue,,red"))
	if st.Code() != fwk.UnschedulableAndUnresolvable || st.Message() != inAnnotation+"blue" {
		t.Errorf("node with a malformed annotation: %v %q, want %q", st.Code(), st.Message(), inAnnotation+"blue")
	}
}

// The args name the annotations, and rejections name the one read.
func TestAnnotationKeysFromArgs(t *testing.T) {
	p, err := New(context.Background(), &runtime.Unknown{ContentType: runtime.ContentTypeJSON,
		Raw: []byte(`{"podAnnotation": "example.com/want", "nodeAnnotation": "example.com/have"}`)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	pod := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Annotations: map[string]string{"example.com/want": "blue"}}}
	node := func(have string) *v1.Node {
		return &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: "n", Annotations: map[string]string{"example.com/have": have, netrequest.AnnotationKey: "blue"}}}
	}
	if st := filter(t, p.(*Plugin), pod, node("blue")); !st.IsSuccess() {
		t.Errorf("node with blue: %v", st)
	}
	want := ErrReasonMissing + " in annotation example.com/have: blue"
	if st := filter(t, p.(*Plugin), pod, node("red")); st.Message() != want {
		t.Errorf("node without blue: %q, want %q", st.Message(), want)
	}
}

func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		args string
		err  string
		want Args
	}{
		{"", "", Args{PodAnnotation: netrequest.AnnotationKey, NodeAnnotation: netrequest.AnnotationKey}},
		{`{"podAnnotation": "example.com/nets", "alwaysAvailable": ["a", "b"]}`, "",
			Args{PodAnnotation: "example.com/nets", NodeAnnotation: netrequest.AnnotationKey, AlwaysAvailable: []string{"a", "b"}}},
		{`{"podAnnotation": "bad key!"}`, `podAnnotation: "bad key!"`, Args{}},
		{`{"nodeAnnotation": "/x"}`, `nodeAnnotation: "/x"`, Args{}},
		{`{"alwaysAvailable": ["a", "A_b", "a"]}`, `alwaysAvailable[1]: "A_b"`, Args{}},
		{`{"alwaysAvailable": ["a", "a"]}`, `alwaysAvailable[1]: "a": duplicate`, Args{}},
		{`{"alwaysAvailable": "a"}`, "cannot unmarshal", Args{}},
	} {
		var obj runtime.Object
		if tc.args != "" {
			obj = &runtime.Unknown{Raw: []byte(tc.args), ContentType: runtime.ContentTypeJSON}
		}
		got, err := decodeArgs(obj)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.Contains(err.Error(), Name+" args") {
				t.Errorf("args %s: error %v, want one containing %q", tc.args, err, tc.err)
			}
			continue
		}
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tc.want) {
			t.Errorf("args %s = %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
}
