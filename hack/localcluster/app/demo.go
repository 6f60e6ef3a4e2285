package app

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"sigs.k8s.io/pod-networks/internal/localcluster"
)

// readyTarget is the bring-up time the project aims for (binaries built).
const readyTarget = 20 * time.Second

// demo brings a fresh cluster up and shows, per node, a pod Running with the
// address it sees on eth0 inside its network namespace, then the networks
// scenario (demo_networks.go), then deletes the demo pods and shows every
// node's leases released. It gathers a DemoResult, printing each section of
// the output once that section's part is complete, and writes the result as
// JSON to resultPath (default <state dir>/demo-result.json). A section that
// cannot be completed fails the demo: nothing of it is printed and no result
// is written.
func demo(ctx context.Context, o localcluster.Options, out io.Writer, resultPath string) error {
	if resultPath == "" {
		resultPath = filepath.Join(o.StateDir, DemoResultFile)
	}
	if err := localcluster.Down(ctx, o); err != nil {
		return fmt.Errorf("tear down the previous cluster: %w", err)
	}
	if err := removeDemoResult(resultPath); err != nil {
		return err
	}
	r := &DemoResult{BringUp: DemoBringUp{Nodes: o.Nodes, TargetSeconds: readyTarget.Seconds()}}
	p := &demoPrinter{w: out, r: r}
	if err := p.through(sectionBringUp); err != nil {
		return err
	}
	c, err := localcluster.Up(ctx, o)
	if err != nil {
		return err
	}
	r.BringUp.ReadySeconds = c.ReadyAfter().Seconds()
	for _, t := range c.Timings {
		r.BringUp.Steps = append(r.BringUp.Steps, DemoStep{Step: t.Step, Seconds: t.Elapsed.Seconds()})
	}
	cs, err := c.Client()
	if err != nil {
		return err
	}

	if r.Pods, err = demoPodPerNode(ctx, c, cs); err != nil {
		return fmt.Errorf("one pod per node: %w", err)
	}
	if err := p.through(sectionPods); err != nil {
		return err
	}
	if o.CRIProxy && o.NetworkScheduler && len(o.NodeNetworks) > 0 {
		if err := demoNetworksScenario(ctx, c, cs, p); err != nil {
			return err
		}
	}
	if r.Leases, err = demoReleaseLeases(ctx, c, cs); err != nil {
		return fmt.Errorf("deleting the demo pods: %w", err)
	}
	if err := p.through(sectionLeases); err != nil {
		return err
	}

	image, err := c.ToolboxImage()
	if err != nil {
		return err
	}
	r.Next = DemoNext{Kubeconfig: c.Kubeconfig(), Kubectl: c.KubectlPath(), ToolboxImage: image, Logs: c.LogPath("<component>")}
	if err := writeDemoResult(resultPath, r); err != nil {
		return fmt.Errorf("write the demo result: %w", err)
	}
	return p.through(numSections - 1)
}

// demoPodPerNode creates a toolbox pod on each node and returns them once
// all are Running, with the address each sees on eth0 inside.
func demoPodPerNode(ctx context.Context, c *localcluster.Cluster, cs kubernetes.Interface) (DemoPods, error) {
	var res DemoPods
	start := time.Now()
	nodes := c.NodeList()
	for _, n := range nodes {
		pod, err := c.ToolboxPod("demo-"+n.Name, n.Name)
		if err != nil {
			return res, err
		}
		if _, err := cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			return res, err
		}
	}
	for _, n := range nodes {
		name := "demo-" + n.Name
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		pod, err := localcluster.WaitPodRunning(wctx, cs, "default", name)
		cancel()
		if err != nil {
			return res, err
		}
		inside, err := c.PodIPv4(ctx, "default", name)
		if err != nil {
			return res, err
		}
		res.Pods = append(res.Pods, DemoPod{Name: name, Node: pod.Spec.NodeName, Subnet: n.Subnet, StatusIP: pod.Status.PodIP, Eth0IP: inside})
	}
	res.RunningSeconds = time.Since(start).Seconds()
	return res, nil
}
