//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sigs.k8s.io/pod-networks/internal/localcluster"
	"sigs.k8s.io/pod-networks/internal/poll"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// nativeNetworks gives node1 blue and red, node2 blue.
func nativeNetworks(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for node, nets := range map[string][]string{"node1": {"blue", "red"}, "node2": {"blue"}} {
		dir := filepath.Join(t.TempDir(), node)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, n := range nets {
			body := map[string]string{"blue": blueNet, "red": redNet}[n]
			if err := os.WriteFile(filepath.Join(dir, n+".conflist"), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		out[node] = dir
	}
	return out
}

// statusNetworks reads node.status.networks with kubectl, as a user would.
func statusNetworks(t *testing.T, c *testCluster, node string) string {
	t.Helper()
	out, err := readStatusNetworks(t.Context(), c, node)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func readStatusNetworks(ctx context.Context, c *testCluster, node string) (string, error) {
	return c.Kubectl(ctx, "get", "node", node, "-o", "jsonpath={.status.networks}")
}

// statusNetworksAre is a waitFor condition: node's status.networks is want.
func statusNetworksAre(c *testCluster, node, want string) func(context.Context) error {
	return func(ctx context.Context) error {
		got, err := readStatusNetworks(ctx, c, node)
		if err != nil {
			return err
		}
		if got != want {
			return fmt.Errorf("%s status.networks = %q", node, got)
		}
		return nil
	}
}

// applyPod creates a toolbox pod in the default namespace from YAML with
// kubectl: this module's k8s.io/api is the stock one, without
// spec.networks. spec is indented under spec.
func applyPod(t *testing.T, c *testCluster, name, annotation, spec string) (string, error) {
	t.Helper()
	return createPod(t, c, "default", name, accessCase{annotation: annotation, native: spec}, false)
}

// waitFor polls cond until it returns nil and returns how long that took;
// it fails the test with what and cond's last reason after timeout. cond
// gets the test's context, not the poll's: a check under way is not cut
// short.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func(context.Context) error) time.Duration {
	t.Helper()
	ctx := t.Context()
	start := time.Now()
	if err := poll.Until(ctx, 100*time.Millisecond, timeout, func(context.Context) error { return cond(ctx) }); err != nil {
		t.Fatalf("%s: not within %v: %v", what, timeout, err)
	}
	return time.Since(start)
}

// TestNativeNetworks runs the patched Kubernetes with the PodNetworks gate
// on, and the proxies not publishing node annotations, so only the native
// fields carry networks: kubelet publishes node.status.networks from the
// runtime; a pod with spec.networks lands on the node that has them and
// has their interfaces; an invalid spec.networks is refused by the
// apiserver naming the entry; a pod waiting for a network is bound to a node
// that gains it, promptly (measured five times).
func TestNativeNetworks(t *testing.T) {
	ctx := t.Context()
	o := options(t)
	o.Patched, o.PodNetworksGate, o.ProxyNodeAnnotation = true, true, false
	o.NodeNetworks = nativeNetworks(t)
	c := upCluster(t, o)
	cs := c.client(t)

	for node, want := range map[string]string{"node1": `["blue","red"]`, "node2": `["blue"]`} {
		waitFor(t, node+" status.networks = "+want, 30*time.Second, statusNetworksAre(c, node, want))
		n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if v, ok := n.Annotations[netrequest.AnnotationKey]; ok {
			t.Errorf("%s has the annotation %q: the native field must be the only source here", node, v)
		}
	}

	if out, err := applyPod(t, c, "native", "", "  networks:\n  - name: blue\n  - name: red\n    interfaceName: data0\n"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	_, inside := c.runningOn(t, cs, "native", "node1") // the only node with blue and red
	for ifname, prefix := range map[string]string{"net1": "10.251.1.", "data0": "10.252.1."} {
		if a := interfaceAddr(inside, ifname); !strings.HasPrefix(a, prefix) {
			t.Errorf("native: %s has %q inside the pod, want %s*:\n%s", ifname, a, prefix, inside)
		}
	}

	// The apiserver refuses an invalid request, naming the entry.
	out, err := applyPod(t, c, "bad", "", "  networks:\n  - name: blue\n  - name: Bad_Net\n  - name: red\n    interfaceName: eth0\n")
	if err == nil {
		t.Errorf("create with invalid networks succeeded: %s", out)
	}
	for _, want := range []string{`spec.networks[1].name: Invalid value: "Bad_Net"`, `spec.networks[2].interfaceName: Invalid value: "eth0"`} {
		if !strings.Contains(out, want) {
			t.Errorf("create with invalid networks: %v; want an error with %q", err, want)
		}
	}

	// A pod asking for a network no node has waits; node2 gains it; the
	// status change alone requeues the pod and it is bound to node2. Five
	// networks, one at a time: the time from the file appearing to the pod
	// bound is the latency issue 10 sets (median <= 2 s, worst <= 3 s).
	var node2 localcluster.Node
	for _, n := range c.NodeList() {
		if n.Name == "node2" {
			node2 = n
		}
	}
	var took []time.Duration
	for i := 1; i <= 5; i++ {
		net, pod := fmt.Sprintf("g%d", i), fmt.Sprintf("wants-g%d", i)
		if out, err := applyPod(t, c, pod, "", "  networks:\n  - name: "+net+"\n"); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		waitEvent(t, cs, pod, "FailedScheduling", "didn't have the requested network(s)", net)
		conf := strings.NewReplacer(`"blue"`, `"`+net+`"`, "pnblue", "pn"+net+"-", "10.251.", fmt.Sprintf("10.24%d.", i),
			"{{NODE_INDEX}}", "2", "{{NODE_DIR}}", node2.Dir).Replace(blueNet)
		if err := os.WriteFile(filepath.Join(node2.NetworksDir(), net+".conflist"), []byte(conf), 0o644); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		err := poll.Until(ctx, 20*time.Millisecond, 15*time.Second, func(ctx context.Context) error {
			p, err := cs.CoreV1().Pods("default").Get(ctx, pod, metav1.GetOptions{})
			if err != nil {
				return err
			}
			switch p.Spec.NodeName {
			case "node2":
				return nil
			case "":
				return fmt.Errorf("%s still Pending", pod)
			default:
				return poll.Fatal(fmt.Errorf("%s scheduled on %s, which lacks %s", pod, p.Spec.NodeName, net))
			}
		})
		if err != nil {
			t.Fatalf("%s bound to node2 after node2 gained %s: %v", pod, net, err)
		}
		took = append(took, time.Since(start))
	}
	sorted := slices.Clone(took)
	slices.Sort(sorted)
	median, worst := sorted[len(sorted)/2], sorted[len(sorted)-1]
	t.Logf("node2 gains a network -> waiting pod bound: %v (median %v, worst %v)", took, median.Round(time.Millisecond), worst.Round(time.Millisecond))
	if median > 2*time.Second || worst > 3*time.Second {
		t.Errorf("network gained -> pod bound: median %v, worst %v; want <= 2 s and <= 3 s", median, worst)
	}
	if got := statusNetworks(t, c, "node2"); got != `["blue","g1","g2","g3","g4","g5"]` {
		t.Errorf("node2 status.networks = %s", got)
	}

	c.downAndCompare(t, "native cluster up then down")
}

// TestVersionSkewGateOff runs the patched binaries with the PodNetworks gate
// off: the native fields are dropped, and annotation-only pods work end to
// end as on stock Kubernetes.
func TestVersionSkewGateOff(t *testing.T) {
	ctx := t.Context()
	o := options(t)
	o.Patched, o.PodNetworksGate = true, false
	o.NodeNetworks = nativeNetworks(t)
	c := upCluster(t, o)
	cs := c.client(t)

	waitFor(t, "node1 annotation blue,red", 30*time.Second, func(ctx context.Context) error {
		n, err := cs.CoreV1().Nodes().Get(ctx, "node1", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if v := n.Annotations[netrequest.AnnotationKey]; v != "blue,red" {
			return fmt.Errorf("node1 annotation %q", v)
		}
		return nil
	})
	if got := statusNetworks(t, c, "node1"); got != "" {
		t.Errorf("node1 status.networks = %s with the gate off, want none", got)
	}

	if out, err := applyPod(t, c, "skew", "blue,red", "  networks:\n  - name: ignored\n"); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if got, err := c.Kubectl(ctx, "get", "pod", "skew", "-o", "jsonpath={.spec.networks}"); err != nil || got != "" {
		t.Errorf("spec.networks with the gate off = %q, %v; want it dropped", got, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	running, err := localcluster.WaitPodRunning(wctx, cs, "default", "skew")
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	if running.Spec.NodeName != "node1" {
		t.Errorf("skew runs on %s, want node1", running.Spec.NodeName)
	}
	inside, err := c.Kubectl(ctx, "exec", "skew", "--", "ip", "-4", "-o", "addr")
	if err != nil {
		t.Fatal(err)
	}
	var ifs []string
	for _, l := range strings.Split(inside, "\n") {
		if f := strings.Fields(l); len(f) > 1 {
			ifs = append(ifs, f[1])
		}
	}
	if !slices.Contains(ifs, "net1") || !slices.Contains(ifs, "net2") {
		t.Errorf("skew: interfaces %v, want net1 and net2 from the annotation", ifs)
	}
	c.downAndCompare(t, "gate-off cluster up then down")
}
