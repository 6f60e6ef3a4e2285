//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
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

// TestDemo runs `make demo`'s scenario: it prints the bring-up time, a pod
// per node with its address inside the pod, each node's networks, a pod with
// two extra networks placed on the node that has both and their addresses
// inside it, a pod asking for a network no node has, Pending until a node
// gains it, a pod whose network fails mid-chain with the event naming the
// network and the cause, and every node's leases back to zero once the demo
// pods are deleted; it leaves the cluster up. The output is checked section
// by section, so that a changed format fails rather than passes unchecked.
func TestDemo(t *testing.T) {
	o := options(t)
	before := snapshot(t, o)
	var stdout, stderr bytes.Buffer
	err := app.Run(t.Context(), []string{"demo", "-output-dir", outputDir()}, &stdout, &stderr)
	t.Logf("demo output:\n%s", stdout.String())
	if err != nil {
		_ = localcluster.Down(t.Context(), o)
		t.Fatalf("demo: %v\n%s", err, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{"bring-up to 2 nodes Ready:", "demo-node1", "demo-node2", "export KUBECONFIG=", "make down",
		// The CRI proxy part, with the demo networks of hack/demo/networks.
		"node1  blue,broken,red\n", "node2  blue\n", `node1  ["blue","broken","red"]`, `node2  ["blue"]`, "scheduled on node1 (the node with both networks)",
		"  net1  10.251.1.", "  net2  10.252.1.", "  net1  blue     10.251.1.",
		"didn't have the requested network(s): green", "demo-green scheduled on node2",
		"pod with 2 extra networks created to Running:", "node gains a network to the waiting pod scheduled:",
		"pod with a failing network created to its FailedCreatePodSandBox event:", "demo pods deleted to every lease released:"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	// Each pod row: the status IP equals the address seen inside the pod.
	rows := demoRows(t, out, "== One pod per node", "POD", 5)
	if len(rows) != 2 {
		t.Errorf("one pod per node: %d rows, want 2: %q", len(rows), rows)
	}
	for _, f := range rows {
		if !strings.HasPrefix(f[0], "demo-node") || f[3] != f[4] || net.ParseIP(f[3]) == nil {
			t.Errorf("demo row %q: want demo-nodeN with the status IP equal to the address seen inside", f)
		}
	}
	// The failing network: its event names the network and the cause.
	broken := demoSection(t, out, `== Pod demo-broken asks for "broken"`)
	for _, want := range []string{"not started on node1 (Pending); event FailedCreatePodSandBox:\n  ", `network "broken"`, "no_such_setting"} {
		if !strings.Contains(broken, want) {
			t.Errorf("demo-broken section lacks %q:\n%s", want, broken)
		}
	}
	// Deleting the demo pods: a row per node and network, all back to 0.
	leases := map[string][]string{}
	for _, f := range demoRows(t, out, "== Deleting the demo pods gives every address back", "NODE", 4) {
		leases[f[0]+"/"+f[1]] = f[2:]
	}
	for key, minBefore := range map[string]int{"node1/primary-node1": 2, "node1/blue": 1, "node1/red": 1, "node1/broken": 0,
		"node2/primary-node2": 1, "node2/blue": 0, "node2/green": 1} {
		v, ok := leases[key]
		if !ok {
			t.Errorf("lease table has no row %s: %v", key, leases)
			continue
		}
		if before, err := strconv.Atoi(v[0]); err != nil || before < minBefore || v[1] != "0" {
			t.Errorf("lease row %s = %q, want at least %d before and 0 after", key, v, minBefore)
		}
	}
	if len(leases) != 7 {
		t.Errorf("lease table has %d rows, want 7: %v", len(leases), leases)
	}
	if !regexp.MustCompile(`(?m)^every lease released \d+\.\ds after the deletion \(\d+ before, 0 now\)$`).MatchString(out) {
		t.Errorf("demo output lacks the time every lease took to be released")
	}
	if up := snapshot(t, o); len(up.Processes) == 0 {
		t.Error("demo did not leave the cluster up")
	}
	if err := localcluster.Down(t.Context(), o); err != nil {
		t.Fatalf("down after demo: %v", err)
	}
	requireUnchanged(t, "demo then down", before, snapshot(t, o))
}

// demoSection returns the demo output from the line starting with header to
// the next section; it fails the test if there is none.
func demoSection(t *testing.T, out, header string) string {
	t.Helper()
	i := strings.Index(out, "\n"+header)
	if i < 0 {
		t.Fatalf("demo output has no section %q", header)
	}
	s := out[i+1:]
	if j := strings.Index(s, "\n== "); j >= 0 {
		s = s[:j]
	}
	return s
}

// demoRows returns the fields of the table rows of a demo section: the
// lines after the one starting with headerStart, up to the first line that
// does not have n fields.
func demoRows(t *testing.T, out, section, headerStart string, n int) [][]string {
	t.Helper()
	var rows [][]string
	inTable := false
	for _, line := range strings.Split(demoSection(t, out, section), "\n") {
		f := strings.Fields(line)
		if !inTable {
			inTable = len(f) > 0 && f[0] == headerStart
			continue
		}
		if len(f) != n {
			break
		}
		rows = append(rows, f)
	}
	if !inTable {
		t.Fatalf("demo section %q has no table starting with %q", section, headerStart)
	}
	return rows
}
