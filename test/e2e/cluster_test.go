//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sigs.k8s.io/pod-networks/hack/localcluster/app"
	"sigs.k8s.io/pod-networks/internal/localcluster"
)

// TestDownWithNothingRunningIsQuiet: `make down` with no cluster succeeds,
// prints nothing and touches nothing.
func TestDownWithNothingRunningIsQuiet(t *testing.T) {
	o := options(t)
	before := snapshot(t, o)
	var stdout, stderr bytes.Buffer
	if err := app.Run(t.Context(), []string{"down", "-output-dir", outputDir()}, &stdout, &stderr); err != nil {
		t.Fatalf("down with nothing running: %v", err)
	}
	if stdout.Len()+stderr.Len() > 0 {
		t.Errorf("down with nothing running printed %q %q, want nothing", stdout.String(), stderr.String())
	}
	requireUnchanged(t, "down with nothing running", before, snapshot(t, o))
}

// TestTwoNodeCluster: two nodes Ready, a pod Running on each with an address
// from its node's subnet as seen inside its network namespace (through the
// API server and from the host), a second `up` refused without change, and a
// teardown that leaves the host as it was.
func TestTwoNodeCluster(t *testing.T) {
	ctx := t.Context()
	o := options(t)
	c := upCluster(t, o)
	t.Logf("bring-up to all nodes Ready: %v", c.ReadyAfter())

	cs := c.client(t)
	nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var ready []string
	for _, n := range nodes.Items {
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				ready = append(ready, n.Name)
			}
		}
	}
	if strings.Join(ready, ",") != "node1,node2" {
		t.Fatalf("Ready nodes = %v, want node1 and node2", ready)
	}

	for _, n := range c.NodeList() {
		name := "e2e-" + n.Name
		pod, err := c.ToolboxPod(name, n.Name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.NodeList() {
		name := "e2e-" + n.Name
		wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		pod, err := localcluster.WaitPodRunning(wctx, cs, "default", name)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		if pod.Spec.NodeName != n.Name {
			t.Errorf("%s runs on %s, want %s", name, pod.Spec.NodeName, n.Name)
		}
		_, subnet, _ := net.ParseCIDR(n.Subnet)
		if ip := net.ParseIP(pod.Status.PodIP); ip == nil || !subnet.Contains(ip) {
			t.Errorf("%s: pod IP %q is not in %s's subnet %s", name, pod.Status.PodIP, n.Name, n.Subnet)
		}
		inside, err := c.PodIPv4(ctx, "default", name)
		if err != nil {
			t.Fatalf("%s: exec ip addr: %v", name, err)
		}
		if inside != pod.Status.PodIP {
			t.Errorf("%s: eth0 inside the pod has %s, pod status says %s", name, inside, pod.Status.PodIP)
		}
		netns, err := c.SandboxNetNS(ctx, n, "default", name)
		if err != nil {
			t.Fatalf("%s: sandbox netns: %v", name, err)
		}
		out, err := exec.CommandContext(ctx, "nsenter", "--net="+netns, "ip", "-4", "-o", "addr", "show", "dev", "eth0").CombinedOutput()
		if err != nil {
			t.Fatalf("%s: nsenter %s: %v: %s", name, netns, err, out)
		}
		if !strings.Contains(string(out), " "+pod.Status.PodIP+"/24 ") {
			t.Errorf("%s: eth0 in netns %s = %q, want %s", name, netns, out, pod.Status.PodIP)
		}
		t.Logf("%s on %s: %s (netns %s)", name, n.Name, inside, netns)
	}

	// A second up says so and changes nothing.
	during := snapshot(t, o)
	var stdout, stderr bytes.Buffer
	err = app.Run(ctx, []string{"up", "-output-dir", outputDir()}, &stdout, &stderr)
	if !errors.Is(err, localcluster.ErrAlreadyUp) || !strings.Contains(err.Error(), "already up") {
		t.Errorf("second up: err = %v, want %v", err, localcluster.ErrAlreadyUp)
	}
	requireUnchanged(t, "second up", during, snapshot(t, o))
	if _, err := cs.CoreV1().Pods("default").Get(ctx, "e2e-node1", metav1.GetOptions{}); err != nil {
		t.Errorf("after a refused second up, the cluster lost its pod: %v", err)
	}

	c.downAndCompare(t, "up then down")
}

// TestFailedComponentIsNamedAndTornDown: a component that does not start is
// named with its log, and the partial cluster is gone.
func TestFailedComponentIsNamedAndTornDown(t *testing.T) {
	o := options(t)
	broken := filepath.Join(t.TempDir(), "kube-scheduler")
	script := "#!/bin/sh\necho 'refusing to start on purpose' >&2\nexit 3\n"
	if err := os.WriteFile(broken, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	o.SchedulerBinary = broken
	before := snapshot(t, o)
	_, err := localcluster.Up(t.Context(), o)
	if err == nil {
		_ = localcluster.Down(t.Context(), o)
		t.Fatal("up with a scheduler that exits succeeded")
	}
	msg := err.Error()
	for _, want := range []string{"kube-scheduler failed to start", o.LogPath("kube-scheduler"), "refusing to start on purpose", "partial cluster torn down"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not mention %q", msg, want)
		}
	}
	requireUnchanged(t, "failed up", before, snapshot(t, o))
}

// TestDemo runs `make demo`'s scenario: the bring-up time, a pod per node
// with its address inside the pod, each node's networks, a pod with two
// extra networks placed on the node that has both and their addresses
// inside it, a pod asking for a network no node has, Pending until a node
// gains it, a pod whose network fails mid-chain with the event naming the
// network and the cause, and every node's leases back to zero once the demo
// pods are deleted; it leaves the cluster up. The demo's result file is
// decoded strictly into this test's own copy of its format (demoResult) and
// every field must be present and sane; the human output must be exactly
// that result rendered (its format is pinned by the golden files of
// hack/localcluster/app), so a changed format fails rather than passes
// unchecked.
func TestDemo(t *testing.T) {
	o := options(t)
	before := snapshot(t, o)
	downed := false
	t.Cleanup(func() {
		if !downed {
			_ = localcluster.Down(context.Background(), o)
		}
	})
	resultPath := filepath.Join(t.TempDir(), app.DemoResultFile)
	var stdout, stderr bytes.Buffer
	err := app.Run(t.Context(), []string{"demo", "-output-dir", outputDir(), "-result-json", resultPath}, &stdout, &stderr)
	t.Logf("demo output:\n%s", stdout.String())
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, stderr.String())
	}
	raw, err := os.ReadFile(resultPath)
	if err != nil {
		t.Fatalf("the demo succeeded without a result: %v", err)
	}
	checkDemoResult(t, decodeDemoResult(t, raw))

	// The human output is the result rendered, and nothing else.
	var r app.DemoResult
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("decode %s into app.DemoResult: %v", resultPath, err)
	}
	var rendered bytes.Buffer
	if err := app.RenderDemo(&rendered, &r); err != nil {
		t.Fatal(err)
	}
	if stdout.String() != rendered.String() {
		t.Errorf("the demo's output is not its result rendered; rendered:\n%s", rendered.String())
	}

	if up := snapshot(t, o); len(up.Processes) == 0 {
		t.Error("demo did not leave the cluster up")
	}
	downed = true
	if err := localcluster.Down(t.Context(), o); err != nil {
		t.Fatalf("down after demo: %v", err)
	}
	requireUnchanged(t, "demo then down", before, snapshot(t, o))
}
