//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sigs.k8s.io/pod-networks/internal/localcluster"
	"sigs.k8s.io/pod-networks/internal/poll"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// A bridge network; {{NODE_INDEX}} keeps the nodes' bridges apart.
const schedNet = `{"cniVersion": "1.0.0", "name": %q, "plugins": [
  {"type": "bridge", "bridge": "pn%s{{NODE_INDEX}}", "isGateway": false, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.%d.{{NODE_INDEX}}.0/24"}]], "dataDir": "{{NODE_DIR}}/e2e-ipam"}}]}`

// TestSchedulerPlacesPodsByNetwork runs the kube-scheduler with the
// NodeNetworks plugin and the CRI proxy publishing node networks: of two
// nodes only node1 has network x, and every pod requesting x lands there;
// a pod requesting a network no node has stays Pending with a
// FailedScheduling event naming it, and is scheduled within 2 s of a node
// publishing that network.
func TestSchedulerPlacesPodsByNetwork(t *testing.T) {
	ctx := t.Context()
	o := options(t)
	o.CRIProxy, o.NetworkScheduler = true, true
	node1 := filepath.Join(t.TempDir(), "node1")
	if err := os.Mkdir(node1, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(node1, "x.conflist"), []byte(fmt.Sprintf(schedNet, "x", "x", 248)), 0o644); err != nil {
		t.Fatal(err)
	}
	o.NodeNetworks = map[string]string{"node1": node1}
	c := upCluster(t, o)
	cs := c.client(t)
	annotation := func(node string) (string, error) {
		n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			return "", err
		}
		return n.Annotations[netrequest.AnnotationKey], nil
	}
	err := poll.Until(ctx, 100*time.Millisecond, 30*time.Second, func(context.Context) error {
		if v, err := annotation("node1"); err != nil || v != "x" {
			return fmt.Errorf("node1 annotation %q (%v)", v, err)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("node1 did not publish x within 30 s: %v", err)
	}
	create := func(name, request string) {
		t.Helper()
		pod, err := c.ToolboxPod(name, "")
		if err != nil {
			t.Fatal(err)
		}
		pod.Spec.NodeSelector = nil // the scheduler chooses
		pod.Annotations = map[string]string{netrequest.AnnotationKey: request}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// Every pod asking for x goes to node1, the only node with x.
	const n = 6
	for i := range n {
		create(fmt.Sprintf("want-x-%d", i), "x")
	}
	create("want-y", "y")
	for i := range n {
		name := fmt.Sprintf("want-x-%d", i)
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		pod, err := localcluster.WaitPodRunning(wctx, cs, "default", name)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if pod.Spec.NodeName != "node1" {
			t.Errorf("%s runs on %s, want node1 (the only node with x)", name, pod.Spec.NodeName)
		}
	}

	// y is nowhere: Pending, with the reason.
	// (Earlier attempts may have met the nodes' start-up taints.)
	waitEvent(t, cs, "want-y", "FailedScheduling", "0/2 nodes are available: node(s) didn't have the requested network(s)", ": y")
	if pod, err := cs.CoreV1().Pods("default").Get(ctx, "want-y", metav1.GetOptions{}); err != nil || pod.Spec.NodeName != "" {
		t.Fatalf("want-y: %v, node %q; want Pending", err, pod.Spec.NodeName)
	}

	// node2 gains y: the pod is scheduled there at once, not at the
	// 5-minute flush of unschedulable pods.
	var node2 localcluster.Node
	for _, nd := range c.NodeList() {
		if nd.Name == "node2" {
			node2 = nd
		}
	}
	y := strings.NewReplacer("{{NODE_INDEX}}", "2", "{{NODE_DIR}}", node2.Dir).Replace(fmt.Sprintf(schedNet, "y", "y", 249))
	if err := os.WriteFile(filepath.Join(node2.NetworksDir(), "y.conflist"), []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	written := time.Now()
	var published time.Time
	var node string
	err = poll.Until(ctx, 20*time.Millisecond, 30*time.Second, func(context.Context) error {
		a, err := annotation("node2")
		if err != nil {
			return err
		}
		if published.IsZero() && a == "y" {
			published = time.Now()
		}
		pod, err := cs.CoreV1().Pods("default").Get(ctx, "want-y", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if node = pod.Spec.NodeName; node == "" {
			return fmt.Errorf("want-y Pending, node2 annotation %q", a)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("want-y not scheduled within 30 s of node2 gaining y: %v", err)
	}
	scheduled := time.Now()
	if node != "node2" {
		t.Errorf("want-y scheduled on %s, want node2", node)
	}
	if published.IsZero() {
		published = scheduled // seen together
	}
	t.Logf("y: file written → node2 annotation %v → want-y scheduled %v", published.Sub(written), scheduled.Sub(published))
	if d := scheduled.Sub(written); d > 2*time.Second {
		t.Errorf("want-y scheduled %v after node2 gained y, want within 2 s", d)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	_, err = localcluster.WaitPodRunning(wctx, cs, "default", "want-y")
	cancel()
	if err != nil {
		t.Fatal(err)
	}

	c.downAndCompare(t, "scheduler cluster up then down")
}
