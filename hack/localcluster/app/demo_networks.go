package app

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"sigs.k8s.io/pod-networks/internal/localcluster"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// demoNetworksScenario shows the CRI proxy at work with the demo networks
// (hack/demo/networks): each node's published networks, a pod on node1
// asking for blue and red with the addresses it sees inside, and a pod on
// node2 asking for red, which node2 lacks, with the event that says so. It
// returns timing lines for the summary.
func demoNetworksScenario(ctx context.Context, c *localcluster.Cluster, cs kubernetes.Interface, out io.Writer) ([]string, error) {
	fmt.Fprintf(out, "\n== Networks each node's CRI proxy publishes (node annotation %s)\n", netrequest.AnnotationKey)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tNETWORKS")
	for _, n := range c.NodeList() {
		var v string
		err := poll(ctx, 30*time.Second, func() (bool, error) {
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
		if v == "" {
			v = "(none)"
		}
		fmt.Fprintf(tw, "%s\t%s\n", n.Name, v)
	}
	tw.Flush()

	// Pinned to their nodes until the scheduler plugin places them.
	const request = "blue,red"
	fmt.Fprintf(out, "\n== Pod demo-networks on node1 asks for %q (annotation %s)\n", request, netrequest.AnnotationKey)
	start := time.Now()
	if err := createWithNetworks(ctx, c, cs, "demo-networks", "node1", request); err != nil {
		return nil, err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	_, err := localcluster.WaitPodRunning(wctx, cs, "default", "demo-networks")
	cancel()
	if err != nil {
		return nil, err
	}
	running := time.Since(start)
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
	err = poll(ctx, 20*time.Second, func() (bool, error) {
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

	fmt.Fprintf(out, "\n== Pod demo-missing on node2 asks for \"red\", which node2 does not have\n")
	if err := createWithNetworks(ctx, c, cs, "demo-missing", "node2", "red"); err != nil {
		return nil, err
	}
	var msg string
	sel := fields.Set{"involvedObject.name": "demo-missing", "reason": "FailedCreatePodSandBox"}.String()
	err = poll(ctx, 60*time.Second, func() (bool, error) {
		evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil || len(evs.Items) == 0 {
			return false, err
		}
		msg = evs.Items[0].Message
		return true, nil
	})
	if err != nil {
		return nil, fmt.Errorf("demo-missing: no FailedCreatePodSandBox event: %w", err)
	}
	fmt.Fprintf(out, "event FailedCreatePodSandBox: %s\n", msg)
	fmt.Fprintln(out, "(today the pod waits on node2 for ever; the scheduler plugin will keep it off nodes without its networks)")
	return []string{fmt.Sprintf("pod with 2 extra networks created to Running: %.1fs", running.Seconds())}, nil
}

func createWithNetworks(ctx context.Context, c *localcluster.Cluster, cs kubernetes.Interface, name, node, request string) error {
	pod, err := c.ToolboxPod(name, node)
	if err != nil {
		return err
	}
	pod.Annotations = map[string]string{netrequest.AnnotationKey: request}
	_, err = cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	return err
}

// poll calls cond every 200 ms until it is true, fails, or timeout passes.
func poll(ctx context.Context, timeout time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}
