package app

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sigs.k8s.io/pod-networks/internal/localcluster"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// readyTarget is the bring-up time the project aims for (binaries built).
const readyTarget = 20 * time.Second

// demo brings a fresh cluster up and shows, per node, a pod Running with the
// address it sees on eth0 inside its network namespace, then the networks
// scenario (demo_networks.go), then deletes the demo pods and shows every
// node's leases released.
func demo(ctx context.Context, o localcluster.Options, out io.Writer) error {
	if err := localcluster.Down(ctx, o); err != nil {
		return fmt.Errorf("tear down the previous cluster: %w", err)
	}
	fmt.Fprintf(out, "== Bringing up %d nodes\n", o.Nodes)
	c, err := localcluster.Up(ctx, o)
	if err != nil {
		return err
	}
	cs, err := c.Client()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "== One pod per node\n")
	start := time.Now()
	nodes := c.NodeList()
	for _, n := range nodes {
		pod, err := c.ToolboxPod("demo-"+n.Name, n.Name)
		if err != nil {
			return err
		}
		if _, err := cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			return err
		}
	}
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tNODE\tSUBNET\tPOD IP (status)\tETH0 INSIDE THE POD")
	for _, n := range nodes {
		name := "demo-" + n.Name
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		pod, err := localcluster.WaitPodRunning(wctx, cs, "default", name)
		cancel()
		if err != nil {
			return err
		}
		inside, err := c.PodIPv4(ctx, "default", name)
		if err != nil {
			return err
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", name, pod.Spec.NodeName, n.Subnet, pod.Status.PodIP, inside)
	}
	podsRunning := since(start)
	tw.Flush()

	var netTimings []string
	if o.CRIProxy && o.NetworkScheduler && len(o.NodeNetworks) > 0 {
		if netTimings, err = demoNetworksScenario(ctx, c, cs, out); err != nil {
			return err
		}
	}
	released, err := demoReleaseLeases(ctx, c, cs, out)
	if err != nil {
		return err
	}
	netTimings = append(netTimings, released)

	fmt.Fprintf(out, "\n== Summary\n")
	verdict := "within"
	if c.ReadyAfter() > readyTarget {
		verdict = "OVER"
	}
	fmt.Fprintf(out, "  bring-up to %d nodes Ready: %.1fs (%s the %v target)\n", len(nodes), c.ReadyAfter().Seconds(), verdict, readyTarget)
	for _, t := range c.Timings {
		fmt.Fprintf(out, "    %6.2fs  %s\n", t.Elapsed.Seconds(), t.Step)
	}
	fmt.Fprintf(out, "  pods created to all Running with addresses checked: %s\n", podsRunning)
	for _, l := range netTimings {
		fmt.Fprintf(out, "  %s\n", l)
	}
	image, err := c.ToolboxImage()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, `
The cluster is still up. Next:
  export KUBECONFIG=%s
  %s/kubectl get nodes -o wide
  %s/kubectl run try --image=%s --image-pull-policy=Never --annotations=%s=blue,red -- sleep 3600
  %s/kubectl exec try -- ip -4 -o addr
  %s/kubectl get events --field-selector reason=FailedCreatePodSandBox
  logs: %s
  make down
`, c.Kubeconfig(), c.BinDir, c.BinDir, image, netrequest.AnnotationKey, c.BinDir, c.BinDir, c.LogPath("<component>"))
	return nil
}
