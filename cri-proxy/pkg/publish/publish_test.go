package publish

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/attachment"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// patches counts PATCH calls on resource and can fail the first n of them.
type patches struct {
	mu    sync.Mutex
	count int
	fail  int
}

func (p *patches) get() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count
}

func (p *patches) reactor(k8stesting.Action) (bool, runtime.Object, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.count++
	if p.fail > 0 {
		p.fail--
		return true, nil, errors.New("apiserver unavailable")
	}
	return false, nil, nil // let the tracker apply it
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func nodeAnnotation(t *testing.T, c *fake.Clientset) string {
	n, err := c.CoreV1().Nodes().Get(context.Background(), "node1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return n.Annotations[netrequest.AnnotationKey]
}

func TestNodePublishesOncePerChange(t *testing.T) {
	c := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}})
	p := &patches{fail: 2}
	c.PrependReactor("patch", "nodes", p.reactor)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := NewNode(c, "node1")
	go n.Run(ctx)

	n.Set([]string{"red", "blue"})
	waitFor(t, "the first value after two failed PATCHes", func() bool { return nodeAnnotation(t, c) == "blue,red" })
	if got := p.get(); got != 3 {
		t.Errorf("PATCH calls = %d, want 3 (two failures, one success)", got)
	}

	n.Set([]string{"blue", "red"}) // same set: steady state
	n.Set([]string{"green"})
	waitFor(t, "the changed value", func() bool { return nodeAnnotation(t, c) == "green" })
	time.Sleep(50 * time.Millisecond)
	if got := p.get(); got != 4 {
		t.Errorf("PATCH calls = %d, want 4: one per change, none for an unchanged set", got)
	}
}

func TestNodeSkipsPatchWhenAnnotationAlreadyRight(t *testing.T) {
	c := fake.NewClientset(&corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1",
		Annotations: map[string]string{netrequest.AnnotationKey: "blue"}}})
	p := &patches{}
	c.PrependReactor("patch", "nodes", p.reactor)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := NewNode(c, "node1")
	go n.Run(ctx)
	n.Set([]string{"blue"})
	waitFor(t, "the node to be read", func() bool {
		for _, a := range c.Actions() {
			if a.GetVerb() == "get" {
				return true
			}
		}
		return false
	})
	time.Sleep(50 * time.Millisecond)
	if got := p.get(); got != 0 {
		t.Errorf("PATCH calls = %d, want 0 after a restart with nothing changed", got)
	}
}

func TestNodeWaitsForRegistration(t *testing.T) {
	c := fake.NewClientset()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := NewNode(c, "node1")
	go n.Run(ctx)
	n.Set([]string{"blue"})
	time.Sleep(100 * time.Millisecond) // a few failed GETs: the node is not registered yet
	if _, err := c.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node1"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the annotation on the registered node", func() bool { return nodeAnnotation(t, c) == "blue" })
}

func TestPodsWritesNetworkStatus(t *testing.T) {
	c := fake.NewClientset(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "team", UID: "uid-1"}})
	p := &patches{fail: 1}
	c.PrependReactor("patch", "pods", p.reactor)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pods := NewPods(c, "primary")
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
	waitFor(t, "the network-status annotation", func() bool {
		pod, err := c.CoreV1().Pods("team").Get(ctx, "web", metav1.GetOptions{})
		return err == nil && pod.Annotations[netrequest.StatusAnnotationKey] == want
	})
	if got := p.get(); got != 2 {
		t.Errorf("PATCH calls = %d, want 2 (one failure retried)", got)
	}
}

func TestPodsGivesUpOnDeletedPod(t *testing.T) {
	c := fake.NewClientset()
	p := &patches{}
	c.PrependReactor("patch", "pods", p.reactor)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pods := NewPods(c, "primary")
	go pods.Run(ctx)
	pods.PublishPod(attachment.PodRef{Namespace: "team", Name: "gone", UID: "u"}, nil, nil)
	waitFor(t, "the PATCH", func() bool { return p.get() == 1 })
	time.Sleep(300 * time.Millisecond) // longer than the first two backoffs
	if got := p.get(); got != 1 {
		t.Errorf("PATCH calls = %d, want 1: a missing pod is not retried", got)
	}
}
