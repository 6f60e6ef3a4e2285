//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"sigs.k8s.io/pod-networks/internal/localcluster"
	"sigs.k8s.io/pod-networks/internal/poll"
)

// skewNodes is the node mix of TestVersionSkewNodes, by node: the columns
// of kubelet-patch/README.md's skew table.
var skewNodes = map[string]localcluster.NodeSkew{
	"node2": {NoCRIProxy: true},   // patched kubelet, gate on, containerd alone
	"node3": {StockKubelet: true}, // stock kubelet, proxy
	"node4": {GateOff: true},      // patched kubelet, gate off, proxy
}

// blueEverywhere gives every node of n the blue network.
func blueEverywhere(t *testing.T, n int) map[string]string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "blue.conflist"), []byte(blueNet), 0o644); err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for i := 1; i <= n; i++ {
		out[fmt.Sprintf("node%d", i)] = dir
	}
	return out
}

// TestVersionSkewNodes runs one patched cluster (apiserver gate on) with a
// node per kubelet/runtime combination and checks the outcome the skew table
// of kubelet-patch/README.md writes for each: a pod with spec.networks runs
// with its networks, or it is not run and the reason names the network or
// the missing capability; the documented holes behave exactly as written.
func TestVersionSkewNodes(t *testing.T) {
	ctx := t.Context()
	o := options(t)
	o.Nodes = 4
	o.Patched, o.PodNetworksGate, o.CRIProxy, o.ProxyNodeAnnotation = true, true, true, true
	// The patched kube-scheduler: NodeNetworks in-tree, in the default
	// profile with the gate on (annotation pods here are bound by nodeName).
	o.NetworkScheduler = false
	o.NodeSkew = skewNodes
	o.NodeNetworks = blueEverywhere(t, o.Nodes)
	c := upCluster(t, o)
	cs := c.client(t)

	// Only node1 declares the capability and lists blue in its status;
	// node4's kubelet (gate off) clears a stale list. The stock kubelet of
	// node3 leaves one alone, which must not attract pods (below).
	waitFor(t, "node1 status.networks = [blue]", 30*time.Second, statusNetworksAre(c, "node1", `["blue"]`))
	for node, want := range map[string]bool{"node1": true, "node2": false, "node3": false, "node4": false} {
		n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Contains(","+strings.Join(n.Status.DeclaredFeatures, ",")+",", ",PodNetworks,"); got != want {
			t.Errorf("%s declares PodNetworks = %v, want %v (declared %v)", node, got, want, n.Status.DeclaredFeatures)
		}
	}
	for _, node := range []string{"node3", "node4"} {
		if out, err := c.Kubectl(ctx, "patch", "node", node, "--subresource=status", "--type=merge", "-p", `{"status":{"networks":["blue"]}}`); err != nil {
			t.Fatalf("make %s's status.networks stale: %v: %s", node, err, out)
		}
	}
	waitFor(t, "node4's kubelet (gate off) clears a stale status.networks", 30*time.Second, statusNetworksAre(c, "node4", ""))

	// Scheduled by the default scheduler: only node1 can run a pod with
	// spec.networks.
	for i := range 3 {
		name := fmt.Sprintf("sched-%d", i)
		if out, err := applyPod(t, c, name, "", "  networks:\n  - name: blue\n"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		_, inside := c.runningOn(t, cs, name, "node1")
		if a := interfaceAddr(inside, "net1"); !strings.HasPrefix(a, "10.251.1.") {
			t.Errorf("%s: net1 has %q, want 10.251.1.*:\n%s", name, a, inside)
		}
	}

	// Bound by nodeName, past the scheduler.
	bound := func(name, node, networks string) {
		t.Helper()
		spec := "  nodeName: " + node + "\n  networks:\n"
		for _, n := range strings.Split(networks, ",") {
			spec += "  - name: " + n + "\n"
		}
		if out, err := applyPod(t, c, name, "", spec); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	bound("bound-noproxy", "node2", "blue")
	bound("bound-gateoff", "node4", "blue")
	bound("bound-missing", "node1", "blue,red")
	bound("bound-stock", "node3", "blue")
	for _, tc := range []struct{ pod, reason, want string }{
		{"bound-noproxy", "PodFeatureUnsupported", "PodNetworks"},
		{"bound-gateoff", "PodFeatureUnsupported", "PodNetworks"},
		{"bound-missing", "PodNetworksUnavailable", "red"},
	} {
		p := waitPodRejected(t, cs, tc.pod, tc.reason)
		if !strings.Contains(p.Status.Message, tc.want) {
			t.Errorf("%s: rejected with %q, want a message naming %s", tc.pod, p.Status.Message, tc.want)
		}
		t.Logf("%s on %s: %s: %s", tc.pod, p.Spec.NodeName, p.Status.Reason, p.Status.Message)
	}
	// Documented hole: a stock kubelet drops spec.networks and runs the pod
	// without them.
	_, inside := c.runningOn(t, cs, "bound-stock", "node3")
	if a := interfaceAddr(inside, "net1"); a != "" {
		t.Errorf("bound-stock has net1 %s on a stock kubelet: the hole the table documents is not what happens:\n%s", a, inside)
	}

	// Static pods take the same path: kubelet admits the pod on the node
	// with the capability and refuses it on the one without.
	image, err := c.ToolboxImage()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range c.NodeList()[:2] {
		manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: static-blue
  namespace: default
spec:
  terminationGracePeriodSeconds: 0
  networks:
  - name: blue
  containers:
  - name: toolbox
    image: %s
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 86400 & wait"]
`, image)
		if err := os.WriteFile(filepath.Join(n.ManifestsDir(), "static-blue.yaml"), []byte(manifest), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, inside = c.runningOn(t, cs, "static-blue-node1", "node1")
	if a := interfaceAddr(inside, "net1"); !strings.HasPrefix(a, "10.251.1.") {
		t.Errorf("static-blue-node1: net1 has %q, want 10.251.1.*:\n%s", a, inside)
	}
	waitEvent(t, cs, "static-blue-node2", "PodFeatureUnsupported", "PodNetworks")
	for _, n := range c.NodeList()[:2] {
		if err := os.Remove(filepath.Join(n.ManifestsDir(), "static-blue.yaml")); err != nil {
			t.Fatal(err)
		}
	}

	// Annotation pods keep the annotation path on every node with a proxy;
	// documented hole: bound to a node without one, it runs without them.
	if out, err := applyPod(t, c, "ann-noproxy", "blue", "  nodeName: node2\n"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	_, inside = c.runningOn(t, cs, "ann-noproxy", "node2")
	if a := interfaceAddr(inside, "net1"); a != "" {
		t.Errorf("ann-noproxy has net1 %s without a proxy:\n%s", a, inside)
	}
	for _, node := range []string{"node3", "node4"} {
		name := "ann-" + node
		if out, err := applyPod(t, c, name, "blue", "  nodeName: "+node+"\n"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		_, inside := c.runningOn(t, cs, name, node)
		if a := interfaceAddr(inside, "net1"); a == "" {
			t.Errorf("%s: no net1 from the annotation on %s:\n%s", name, node, inside)
		}
	}

	c.downAndCompare(t, "skew cluster up then down")
}

// TestVersionSkewStockScheduler runs the stock kube-scheduler against the
// patched apiserver: it does not see spec.networks and places such pods
// anywhere. Each must then run with its networks (node1) or be refused by
// kubelet for the missing capability (node2, no proxy), never run without
// them.
func TestVersionSkewStockScheduler(t *testing.T) {
	o := options(t)
	o.Patched, o.PodNetworksGate, o.CRIProxy, o.NetworkScheduler, o.StockScheduler = true, true, true, false, true
	o.NodeSkew = map[string]localcluster.NodeSkew{"node2": {NoCRIProxy: true}}
	o.NodeNetworks = blueEverywhere(t, o.Nodes)
	c := upCluster(t, o)
	cs := c.client(t)
	waitFor(t, "node1 status.networks = [blue]", 30*time.Second, statusNetworksAre(c, "node1", `["blue"]`))

	on := map[string]int{}
	for i := range 6 {
		name := fmt.Sprintf("stock-sched-%d", i)
		if out, err := applyPod(t, c, name, "", "  networks:\n  - name: blue\n"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		var p *corev1.Pod
		waitFor(t, name+" running or rejected", 60*time.Second, func(ctx context.Context) error {
			var err error
			if p, err = cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{}); err != nil {
				return err
			}
			if p.Status.Phase != corev1.PodRunning && p.Status.Phase != corev1.PodFailed {
				return fmt.Errorf("%s is %s", name, p.Status.Phase)
			}
			return nil
		})
		on[p.Spec.NodeName]++
		switch {
		case p.Spec.NodeName == "node2" && (p.Status.Phase != corev1.PodFailed || p.Status.Reason != "PodFeatureUnsupported" || !strings.Contains(p.Status.Message, "PodNetworks")):
			t.Errorf("%s on node2 (no proxy): %s %s %q; want rejected for PodNetworks", name, p.Status.Phase, p.Status.Reason, p.Status.Message)
		case p.Spec.NodeName == "node1":
			_, inside := c.runningOn(t, cs, name, "node1")
			if a := interfaceAddr(inside, "net1"); !strings.HasPrefix(a, "10.251.1.") {
				t.Errorf("%s on node1: net1 has %q, want 10.251.1.*", name, a)
			}
		}
	}
	t.Logf("the stock scheduler placed the pods: %v", on)
	c.downAndCompare(t, "stock-scheduler skew cluster up then down")
}

// waitPodRejected waits until kubelet has refused pod with reason, and
// returns it.
func waitPodRejected(t *testing.T, cs kubernetes.Interface, name, reason string) *corev1.Pod {
	t.Helper()
	var pod *corev1.Pod
	waitFor(t, name+" rejected with "+reason, 60*time.Second, func(ctx context.Context) error {
		p, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		switch {
		case p.Status.Phase == corev1.PodRunning:
			return poll.Fatal(fmt.Errorf("%s is Running on %s", name, p.Spec.NodeName))
		case p.Status.Phase != corev1.PodFailed:
			return fmt.Errorf("%s is %s", name, p.Status.Phase)
		case p.Status.Reason != reason:
			return poll.Fatal(fmt.Errorf("%s failed with %s: %s", name, p.Status.Reason, p.Status.Message))
		}
		pod = p
		return nil
	})
	if pod == nil {
		t.Fatal(errors.New("unreachable"))
	}
	return pod
}
