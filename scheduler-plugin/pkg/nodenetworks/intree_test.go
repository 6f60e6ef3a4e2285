//go:build podnetworks_intree

package nodenetworks

import (
	"context"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
)

// The in-tree plugin: spec.networks against status.networks, nothing else.

const wantNodeEvents = fwk.Add | fwk.UpdateNodeNetworks

func newTestPlugin(t testing.TB, always ...string) *Plugin {
	t.Helper()
	if len(always) == 0 {
		p, err := New(context.Background(), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return p.(*Plugin)
	}
	return newPlugin(source{}, always, nil) // no args set it in-tree; the core supports it
}

const annotationKey = "networking.x-k8s.io/networks"

func TestInTreeReadsNativeFieldsOnly(t *testing.T) {
	p := newTestPlugin(t)
	annotated := &v1.Pod{}
	annotated.Annotations = map[string]string{annotationKey: "red"}
	if _, st := p.PreFilter(context.Background(), framework.NewCycleState(), annotated, nil); st.Code() != fwk.Skip {
		t.Errorf("pod asking with the annotation only: %v, want Skip", st)
	}
	n := nodeWith("n", "-")
	n.Annotations = map[string]string{annotationKey: "red"}
	if st := filter(t, p, podWith("red"), n); st.Code() != fwk.UnschedulableAndUnresolvable || st.Message() != missing("red") {
		t.Errorf("node listing red in the annotation only: %v %q, want %q", st.Code(), st.Message(), missing("red"))
	}
}

func TestInTreeHasNoArgs(t *testing.T) {
	// Args given anyway are ignored, as by the other in-tree plugins
	// without args.
	if _, err := New(context.Background(), &runtime.Unknown{Raw: []byte(`{"podAnnotation": "x"}`), ContentType: runtime.ContentTypeJSON}, nil); err != nil {
		t.Errorf("New with args: %v", err)
	}
	events, _ := newTestPlugin(t).EventsToRegister(context.Background())
	if len(events) != 1 {
		t.Errorf("events = %v, want node events only (spec.networks is immutable)", events)
	}
}
