//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sigs.k8s.io/pod-networks/internal/poll"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// TestStockKubernetes runs unmodified Kubernetes (the stock kube-apiserver,
// kube-controller-manager and kubelet) with the stock build of
// pod-networks-scheduler and the CRI proxy: the annotations alone carry
// the request and the node's networks. A pod asking for blue, which only
// node1 has, is placed there and runs with net1 holding a blue address,
// seen inside the pod; teardown leaves the host as it was.
func TestStockKubernetes(t *testing.T) {
	ctx := t.Context()
	o := options(t)
	o.Patched, o.CRIProxy, o.NetworkScheduler, o.ProxyNodeAnnotation = false, true, true, true
	node1 := filepath.Join(t.TempDir(), "node1")
	if err := os.Mkdir(node1, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(node1, "blue.conflist"), []byte(blueNet), 0o644); err != nil {
		t.Fatal(err)
	}
	o.NodeNetworks = map[string]string{"node1": node1}
	c := upCluster(t, o)
	cs := c.client(t)

	// The stock binaries run, not the patched ones.
	for _, component := range []string{"kube-apiserver", "kube-controller-manager", "node1-kubelet", "kube-scheduler"} {
		b, err := os.ReadFile(c.LogPath(component))
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(string(b), "\n")
		if strings.Contains(first, "/patched/") || !strings.HasPrefix(first, "# "+c.BinDir+"/") {
			t.Errorf("%s runs %q, want a stock binary of %s", component, first, c.BinDir)
		}
	}

	pod, err := c.ToolboxPod("stock-blue", "")
	if err != nil {
		t.Fatal(err)
	}
	pod.Spec.NodeSelector = nil // the scheduler places it
	pod.Annotations = map[string]string{netrequest.AnnotationKey: "blue"}
	if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, inside := c.runningOn(t, cs, "stock-blue", "node1") // the only node with blue
	_, blue, _ := net.ParseCIDR("10.251.1.0/24")
	if ip := net.ParseIP(interfaceAddr(inside, "net1")); ip == nil || !blue.Contains(ip) {
		t.Errorf("stock-blue: net1 inside the pod has %q, want an address in %s:\n%s", interfaceAddr(inside, "net1"), blue, inside)
	}
	err = poll.Until(ctx, 200*time.Millisecond, 20*time.Second, func(ctx context.Context) error {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "stock-blue", metav1.GetOptions{})
		if err != nil {
			return err
		}
		if got := p.Annotations[netrequest.StatusAnnotationKey]; !strings.Contains(got, `"blue"`) {
			return fmt.Errorf("network-status annotation %q does not name blue", got)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
	c.downAndCompare(t, "stock Kubernetes")
}
