//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"

	"sigs.k8s.io/pod-networks/internal/localcluster"
)

// TestMain refuses to run, rather than skip, without root or the binaries:
// a skipped e2e suite must never look like a passing one.
func TestMain(m *testing.M) {
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "e2e tests need root")
		os.Exit(1)
	}
	o := localcluster.DefaultOptions(outputDir())
	for _, b := range []string{"etcd", "containerd", "cni/bridge", "cri-proxy",
		"kube-apiserver", "kube-controller-manager", "kubelet", "kube-scheduler", "pod-networks-scheduler", // stock
		"patched/kube-apiserver", "patched/kube-controller-manager", "patched/kubelet", "patched/kube-scheduler",
		"patched/pod-networks-scheduler", "patched/kubectl"} {
		if _, err := os.Stat(filepath.Join(o.BinDir, b)); err != nil {
			fmt.Fprintf(os.Stderr, "e2e tests need the built binaries (make build): %v\n", err)
			os.Exit(1)
		}
	}
	os.Exit(m.Run())
}

// outputDir is the repository's _output, or $OUTPUT_DIR.
func outputDir() string {
	if d := os.Getenv("OUTPUT_DIR"); d != "" {
		return d
	}
	wd, _ := os.Getwd()
	return filepath.Join(wd, "..", "..", "_output")
}

func options(t *testing.T) localcluster.Options {
	t.Helper()
	o := localcluster.DefaultOptions(filepath.Clean(outputDir()))
	o.Logf = t.Logf
	return o
}

func snapshot(t *testing.T, o localcluster.Options) localcluster.HostState {
	t.Helper()
	s, err := localcluster.Snapshot(o)
	if err != nil {
		t.Fatalf("snapshot host state: %v", err)
	}
	return s
}

// requireUnchanged fails with every difference between two host states.
func requireUnchanged(t *testing.T, what string, before, after localcluster.HostState) {
	t.Helper()
	if d := before.Diff(after); len(d) > 0 {
		t.Fatalf("%s: the host changed:\n  %s", what, joinLines(d))
	}
}

func joinLines(lines []string) string {
	out := ""
	for i, l := range lines {
		if i > 0 {
			out += "\n  "
		}
		out += l
	}
	return out
}

// testCluster is a cluster a test brought up, with the host state from
// before, so that the test can check teardown restores it.
type testCluster struct {
	*localcluster.Cluster
	opts   localcluster.Options
	before localcluster.HostState
	downed bool
}

// upCluster brings a cluster up with o. It fails the test if one is already
// running, and tears the cluster down when the test ends unless
// downAndCompare did.
func upCluster(t *testing.T, o localcluster.Options) *testCluster {
	t.Helper()
	tc := &testCluster{opts: o, before: snapshot(t, o)}
	if len(tc.before.Processes) > 0 {
		t.Fatalf("a cluster is already running: %v", tc.before.Processes)
	}
	c, err := localcluster.Up(t.Context(), o)
	if err != nil {
		t.Fatalf("up: %v", err)
	}
	tc.Cluster = c
	t.Cleanup(func() {
		if !tc.downed {
			_ = localcluster.Down(context.Background(), o)
		}
	})
	return tc
}

// client returns a client of the cluster.
func (tc *testCluster) client(t *testing.T) kubernetes.Interface {
	t.Helper()
	cs, err := tc.Client()
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// downAndCompare tears the cluster down and fails the test if the host is
// not as it was before upCluster.
func (tc *testCluster) downAndCompare(t *testing.T, what string) {
	t.Helper()
	tc.downed = true
	if err := localcluster.Down(t.Context(), tc.opts); err != nil {
		t.Fatalf("down: %v", err)
	}
	requireUnchanged(t, what, tc.before, snapshot(t, tc.opts))
}

// runningOn waits up to a minute for the pod to be Running, fails unless it
// runs on node, and returns it with its IPv4 addresses as seen inside it
// (ip -4 -o addr).
func (tc *testCluster) runningOn(t *testing.T, cs kubernetes.Interface, name, node string) (*corev1.Pod, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	pod, err := localcluster.WaitPodRunning(ctx, cs, "default", name)
	if err != nil {
		t.Fatal(err)
	}
	if pod.Spec.NodeName != node {
		t.Fatalf("%s runs on %s, want %s", name, pod.Spec.NodeName, node)
	}
	inside, err := tc.Kubectl(ctx, "exec", name, "--", "ip", "-4", "-o", "addr")
	if err != nil {
		t.Fatal(err)
	}
	return pod, inside
}
