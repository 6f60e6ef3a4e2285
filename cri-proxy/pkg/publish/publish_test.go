package publish

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	metadatafake "k8s.io/client-go/metadata/fake"
	k8stesting "k8s.io/client-go/testing"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/attachment"
	"sigs.k8s.io/pod-networks/internal/poll"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// patches counts PATCH calls, by object name, and can fail the first n.
type patches struct {
	mu     sync.Mutex
	byName map[string]int
	fail   int
}

func (p *patches) get(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byName[name]
}

func (p *patches) reactor(a k8stesting.Action) (bool, runtime.Object, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byName == nil {
		p.byName = map[string]int{}
	}
	p.byName[a.(k8stesting.PatchAction).GetName()]++
	if p.fail > 0 {
		p.fail--
		return true, nil, errors.New("apiserver unavailable")
	}
	return false, nil, nil // let the tracker apply it
}

// object is what the metadata client sees of a node or a pod.
func object(kind, namespace, name, uid string, annotations map[string]string) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: kind},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, UID: types.UID(uid), Annotations: annotations}}
}

func newClient(objects ...runtime.Object) *metadatafake.FakeMetadataClient {
	scheme := metadatafake.NewTestScheme()
	for _, kind := range []string{"Node", "Pod"} {
		scheme.AddKnownTypeWithName(schema.GroupVersionKind{Version: "v1", Kind: kind}, &metav1.PartialObjectMetadata{})
		scheme.AddKnownTypeWithName(schema.GroupVersionKind{Version: "v1", Kind: kind + "List"}, &metav1.PartialObjectMetadataList{})
	}
	return metadatafake.NewSimpleMetadataClient(scheme, objects...)
}

// waitFor polls cond, failing the test if it is not done within 10 s.
func waitFor(t *testing.T, what string, cond poll.Condition) {
	t.Helper()
	if err := poll.Until(t.Context(), 5*time.Millisecond, 10*time.Second, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// annotationIs is done once the object's annotation key is want.
func annotationIs(t *testing.T, c *metadatafake.FakeMetadataClient, gvr schema.GroupVersionResource, namespace, name, key, want string) poll.Condition {
	return func(context.Context) error {
		if got := annotation(t, c, gvr, namespace, name, key); got != want {
			return fmt.Errorf("%s is %q", key, got)
		}
		return nil
	}
}

// nodeAnnotationIs is done once node1's network annotation is want.
func nodeAnnotationIs(t *testing.T, c *metadatafake.FakeMetadataClient, want string) poll.Condition {
	return annotationIs(t, c, Nodes, "", "node1", netrequest.AnnotationKey, want)
}

func annotation(t *testing.T, c *metadatafake.FakeMetadataClient, gvr schema.GroupVersionResource, namespace, name, key string) string {
	t.Helper()
	o, err := c.Resource(gvr).Namespace(namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return o.Annotations[key]
}

func TestNodePublishesOncePerChange(t *testing.T) {
	c := newClient(object("Node", "", "node1", "", nil))
	p := &patches{fail: 2}
	c.PrependReactor("patch", "nodes", p.reactor)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := NewNode(c, "node1")
	go n.Run(ctx)

	n.Set([]string{"red", "blue"})
	waitFor(t, "the first value after two failed PATCHes", nodeAnnotationIs(t, c, "blue,red"))
	if got := p.get("node1"); got != 3 {
		t.Errorf("PATCH calls = %d, want 3 (two failures, one success)", got)
	}
	n.Set([]string{"blue", "red"}) // same set: steady state
	n.Set([]string{"green"})
	waitFor(t, "the changed value", nodeAnnotationIs(t, c, "green"))
	n.Set([]string{"green"})
	n.Set([]string{"yellow"}) // values are published in order: a barrier
	waitFor(t, "the last value", nodeAnnotationIs(t, c, "yellow"))
	if got := p.get("node1"); got != 5 {
		t.Errorf("PATCH calls = %d, want 5: one per change, none for an unchanged set", got)
	}
}

func TestNodeSkipsPatchWhenAnnotationAlreadyRight(t *testing.T) {
	c := newClient(object("Node", "", "node1", "", map[string]string{netrequest.AnnotationKey: "blue"}))
	p := &patches{}
	c.PrependReactor("patch", "nodes", p.reactor)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := NewNode(c, "node1")
	go n.Run(ctx)
	n.Set([]string{"blue"})
	n.Set([]string{"red"})
	waitFor(t, "the next value", nodeAnnotationIs(t, c, "red"))
	if got := p.get("node1"); got != 1 {
		t.Errorf("PATCH calls = %d, want 1 (red): the node already had blue", got)
	}
}

func TestNodeWaitsForRegistration(t *testing.T) {
	c := newClient()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := NewNode(c, "node1")
	go n.Run(ctx)
	n.Set([]string{"blue"})
	waitFor(t, "two failed GETs: the node is not registered yet", func(context.Context) error {
		gets := 0
		for _, a := range c.Actions() {
			if a.GetVerb() == "get" {
				gets++
			}
		}
		if gets < 2 {
			return fmt.Errorf("%d GETs", gets)
		}
		return nil
	})
	if _, err := c.Resource(Nodes).(metadatafake.MetadataClient).CreateFake(object("Node", "", "node1", "", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the annotation on the registered node", nodeAnnotationIs(t, c, "blue"))
}

func TestPodsWritesNetworkStatus(t *testing.T) {
	c := newClient(object("Pod", "team", "web", "uid-1", nil))
	p := &patches{fail: 1}
	c.PrependReactor("patch", "pods", p.reactor)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pods := NewPodStatuses(c, "primary")
	go pods.Run(ctx)
	pods.PublishPod(attachment.PodRef{Namespace: "team", Name: "web", UID: "uid-1", SandboxID: "sb1"}, []string{"10.244.1.5"},
		[]attachment.Attachment{{Network: "blue", Interface: "net1", MAC: "02:00:00:00:00:01", IPs: []string{"10.251.1.7/24"}}})
	want, err := netrequest.FormatNetworkStatus([]netrequest.NetworkStatus{
		{Name: "primary", Interface: "eth0", IPs: []string{"10.244.1.5"}, Default: true},
		{Name: "blue", Interface: "net1", IPs: []string{"10.251.1.7"}, MAC: "02:00:00:00:00:01"},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the network-status annotation", annotationIs(t, c, Pods, "team", "web", netrequest.StatusAnnotationKey, want))
	if got := p.get("web"); got != 2 {
		t.Errorf("PATCH calls = %d, want 2 (one failure retried)", got)
	}
	// The patch names the pod's UID: a pod recreated under the same name
	// must not get the old pod's status.
	for _, a := range c.Actions() {
		if pa, ok := a.(k8stesting.PatchAction); ok && !strings.Contains(string(pa.GetPatch()), `"uid":"uid-1"`) {
			t.Errorf("patch %s does not name the pod's UID", pa.GetPatch())
		}
	}
}

func TestPodsGivesUpOnDeletedPod(t *testing.T) {
	c := newClient(object("Pod", "team", "web", "uid-1", nil))
	p := &patches{}
	c.PrependReactor("patch", "pods", p.reactor)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pods := NewPodStatuses(c, "primary")
	go pods.Run(ctx)
	pods.PublishPod(attachment.PodRef{Namespace: "team", Name: "gone", UID: "u"}, nil, nil)
	// Statuses are written in order: once web's is, gone's retries are over.
	pods.PublishPod(attachment.PodRef{Namespace: "team", Name: "web", UID: "uid-1"}, nil, nil)
	waitFor(t, "the next pod's status", func(context.Context) error {
		if annotation(t, c, Pods, "team", "web", netrequest.StatusAnnotationKey) == "" {
			return errors.New("no status yet")
		}
		return nil
	})
	if got := p.get("gone"); got != 1 {
		t.Errorf("PATCH calls = %d, want 1: a missing pod is not retried", got)
	}
}
