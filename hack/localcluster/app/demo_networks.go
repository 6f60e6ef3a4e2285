package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"sigs.k8s.io/pod-networks/internal/localcluster"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// demoNetworksScenario shows the CRI proxy and the scheduler plugin at work
// with the demo networks (hack/demo/networks): each node's published
// networks; a pod asking for blue and red, placed on the node that has both,
// with the addresses it sees inside; a pod asking for green, which no node
// has, Pending with the reason; then a node gaining green and the pod
// scheduled there; then a pod asking for broken, whose plugin chain fails
// mid-way, with the event naming the network and the cause. It returns
// timing lines for the summary.
func demoNetworksScenario(ctx context.Context, c *localcluster.Cluster, cs kubernetes.Interface, out io.Writer) ([]string, error) {
	fmt.Fprintf(out, "\n== Networks each node's CRI proxy publishes (node annotation %s)\n", netrequest.AnnotationKey)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tNETWORKS")
	published := map[string]bool{} // networks some node has
	for _, n := range c.NodeList() {
		var v string
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
			node, err := cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			var ok bool
			v, ok = node.Annotations[netrequest.AnnotationKey]
			return ok, nil
		})
		if err != nil {
			return nil, fmt.Errorf("%s: no %s annotation: %w", n.Name, netrequest.AnnotationKey, err)
		}
		for _, name := range strings.Split(v, ",") {
			published[name] = true
		}
		if v == "" {
			v = "(none)"
		}
		fmt.Fprintf(tw, "%s\t%s\n", n.Name, v)
	}
	tw.Flush()

	if c.Patched && c.PodNetworksGate {
		fmt.Fprintf(out, "\n== The same in node.status.networks, published by the patched kubelet (PodNetworks gate on)\n")
		tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NODE\tSTATUS.NETWORKS")
		for _, n := range c.NodeList() {
			var v string
			err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
				out, err := c.Kubectl(ctx, "get", "node", n.Name, "-o", "jsonpath={.status.networks}")
				v = out
				return err == nil && v != "", nil
			})
			if err != nil {
				return nil, fmt.Errorf("%s: no status.networks: %w", n.Name, err)
			}
			fmt.Fprintf(tw, "%s\t%s\n", n.Name, v)
		}
		tw.Flush()
	}

	const request = "blue,red"
	fmt.Fprintf(out, "\n== Pod demo-networks asks for %q (annotation %s); the scheduler chooses the node\n", request, netrequest.AnnotationKey)
	start := time.Now()
	if err := createWithNetworks(ctx, c, cs, "demo-networks", request); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	pod, err := localcluster.WaitPodRunning(wctx, cs, "default", "demo-networks")
	cancel()
	if err != nil {
		return nil, err
	}
	running := time.Since(start)
	fmt.Fprintf(out, "scheduled on %s (the node with both networks)\n", pod.Spec.NodeName)
	inside, err := c.Kubectl(ctx, "exec", "demo-networks", "--", "ip", "-4", "-o", "addr")
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(out, "inside the pod (ip -4 -o addr):")
	for _, l := range strings.Split(strings.TrimSpace(inside), "\n") {
		if f := strings.Fields(l); len(f) >= 4 && f[1] != "lo" {
			fmt.Fprintf(out, "  %-5s %s\n", f[1], f[3])
		}
	}
	var st string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 20*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "demo-networks", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		st = p.Annotations[netrequest.StatusAnnotationKey]
		return st != "", nil
	})
	if err != nil {
		return nil, fmt.Errorf("demo-networks: no %s annotation: %w", netrequest.StatusAnnotationKey, err)
	}
	var pretty []netrequest.NetworkStatus
	if err := json.Unmarshal([]byte(st), &pretty); err != nil {
		return nil, fmt.Errorf("demo-networks: %s: %w", netrequest.StatusAnnotationKey, err)
	}
	fmt.Fprintf(out, "annotation %s:\n", netrequest.StatusAnnotationKey)
	for _, s := range pretty {
		fmt.Fprintf(out, "  %-5s %-8s %s\n", s.Interface, s.Name, strings.Join(s.IPs, ","))
	}

	fmt.Fprintf(out, "\n== Pod demo-green asks for \"green\", which no node has\n")
	if err := createWithNetworks(ctx, c, cs, "demo-green", "green"); err != nil {
		return nil, err
	}
	var msg string
	sel := fields.Set{"involvedObject.name": "demo-green", "reason": "FailedScheduling"}.String()
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			return false, err
		}
		for _, ev := range evs.Items {
			if strings.Contains(ev.Message, "green") {
				msg = ev.Message
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return nil, fmt.Errorf("demo-green: no FailedScheduling event naming green: %w", err)
	}
	fmt.Fprintf(out, "Pending; event FailedScheduling: %s\n", msg)

	last := c.NodeList()[len(c.NodeList())-1]
	fmt.Fprintf(out, "\n== %s gains \"green\" (a conflist appears in its networks dir)\n", last.Name)
	green := fmt.Sprintf(`{"cniVersion": "1.1.0", "name": "green", "plugins": [
  {"type": "bridge", "bridge": "pngreen%d", "isGateway": false, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.250.%d.0/24"}]], "dataDir": %q}}]}`,
		last.Index, last.Index, filepath.Join(last.Dir, "networks-ipam"))
	gained := time.Now()
	if err := os.WriteFile(filepath.Join(last.NetworksDir(), "green.conflist"), []byte(green), 0o644); err != nil {
		return nil, err
	}
	var node string
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "demo-green", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		node = p.Spec.NodeName
		return node != "", nil
	})
	if err != nil {
		return nil, fmt.Errorf("demo-green: not scheduled after %s gained green: %w", last.Name, err)
	}
	requeued := time.Since(gained)
	fmt.Fprintf(out, "demo-green scheduled on %s %.2fs after the file appeared (proxy publishes, scheduler requeues)\n", node, requeued.Seconds())
	timings := []string{
		fmt.Sprintf("pod with 2 extra networks created to Running: %.1fs", running.Seconds()),
		fmt.Sprintf("node gains a network to the waiting pod scheduled: %.2fs", requeued.Seconds()),
	}
	if published["broken"] {
		t, err := demoBrokenNetwork(ctx, c, cs, out)
		if err != nil {
			return nil, err
		}
		timings = append(timings, t)
	}
	return timings, nil
}

// demoBrokenNetwork creates a pod asking for "broken", whose chain gets an
// address from host-local and then fails in the tuning plugin, and prints
// the FailedCreatePodSandBox event kubelet records: the proxy's error names
// the network and the plugin's cause.
func demoBrokenNetwork(ctx context.Context, c *localcluster.Cluster, cs kubernetes.Interface, out io.Writer) (string, error) {
	fmt.Fprintf(out, "\n== Pod demo-broken asks for \"broken\": bridge + host-local, then tuning with a sysctl that does not exist\n")
	start := time.Now()
	if err := createWithNetworks(ctx, c, cs, "demo-broken", "broken"); err != nil {
		return "", err
	}
	var msg string
	sel := fields.Set{"involvedObject.name": "demo-broken", "reason": "FailedCreatePodSandBox"}.String()
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 60*time.Second, true, func(ctx context.Context) (bool, error) {
		evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			return false, err
		}
		for _, ev := range evs.Items {
			if strings.Contains(ev.Message, `"broken"`) {
				msg = ev.Message
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return "", fmt.Errorf("demo-broken: no FailedCreatePodSandBox event naming the network broken: %w", err)
	}
	failed := time.Since(start)
	p, err := cs.CoreV1().Pods("default").Get(ctx, "demo-broken", metav1.GetOptions{})
	if err != nil {
		return "", err
	}
	fmt.Fprintf(out, "not started on %s (%s); event FailedCreatePodSandBox:\n  %s\n", p.Spec.NodeName, p.Status.Phase, msg)
	fmt.Fprintf(out, "the proxy rolled the chain back (the address is given back) and kubelet retries with backoff\n")
	return fmt.Sprintf("pod with a failing network created to its FailedCreatePodSandBox event: %.1fs", failed.Seconds()), nil
}

// createWithNetworks creates a toolbox pod asking for request, placed by
// the scheduler.
func createWithNetworks(ctx context.Context, c *localcluster.Cluster, cs kubernetes.Interface, name, request string) error {
	pod, err := c.ToolboxPod(name, "")
	if err != nil {
		return err
	}
	pod.Spec.NodeSelector = nil
	pod.Annotations = map[string]string{netrequest.AnnotationKey: request}
	_, err = cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	return err
}
