//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"sigs.k8s.io/pod-networks/internal/localcluster"
	"sigs.k8s.io/pod-networks/internal/poll"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// Per-node networks of TestProxyAttachesNetworks. Leases live in
// <node dir>/e2e-ipam so the test can see each one come and go.
const (
	blueNet = `{"cniVersion": "1.1.0", "name": "blue", "plugins": [
  {"type": "bridge", "bridge": "pnblue{{NODE_INDEX}}", "isGateway": false, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.251.{{NODE_INDEX}}.0/24"}]], "dataDir": "{{NODE_DIR}}/e2e-ipam"}}]}`
	redNet = `{"cniVersion": "1.0.0", "name": "red", "plugins": [
  {"type": "ptp", "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.252.{{NODE_INDEX}}.0/24"}]], "dataDir": "{{NODE_DIR}}/e2e-ipam"}}]}`
	// failing gets an address, then the real tuning plugin fails on a
	// sysctl that does not exist: the proxy must roll back the lease.
	failingNet = `{"cniVersion": "1.0.0", "name": "failing", "plugins": [
  {"type": "bridge", "bridge": "pnfail{{NODE_INDEX}}", "isGateway": false, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.253.{{NODE_INDEX}}.0/24"}]], "dataDir": "{{NODE_DIR}}/e2e-ipam"}},
  {"type": "tuning", "sysctl": {"net.ipv4.conf.IFNAME.no_such_setting": "1"}}]}`
)

// TestProxyAttachesNetworks runs the CRI proxy in front of each node's
// containerd, with real CNI plugins: node annotations list each node's
// networks; a pod asking for two networks runs with net1 and net2 carrying
// addresses from those networks (checked inside the pod) and a
// network-status annotation; a network that fails rolls back and is named in
// the pod's events; a network the node lacks is named too; deleting the
// pods releases every address; teardown leaves the host as it was.
func TestProxyAttachesNetworks(t *testing.T) {
	ctx := t.Context()
	o := options(t)
	o.CRIProxy = true
	// The stock scheduler: pods reach nodes that lack their networks, so
	// the proxy's own refusal is what is tested.
	o.NetworkScheduler = false
	dirs := map[string]map[string]string{
		"node1": {"blue.conflist": blueNet, "red.conflist": redNet, "failing.conflist": failingNet, "broken.conflist": `{"name": `},
		"node2": {"blue.conflist": blueNet},
	}
	o.NodeNetworks = map[string]string{}
	for node, files := range dirs {
		dir := filepath.Join(t.TempDir(), node)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for name, body := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		o.NodeNetworks[node] = dir
	}
	c := upCluster(t, o)
	cs := c.client(t)
	nodes := map[string]localcluster.Node{}
	for _, n := range c.NodeList() {
		nodes[n.Name] = n
	}

	// The proxies publish what they have; broken.conflist is skipped.
	for node, want := range map[string]string{"node1": "blue,failing,red", "node2": "blue"} {
		err := poll.Until(ctx, 200*time.Millisecond, 30*time.Second, func(context.Context) error {
			n, err := cs.CoreV1().Nodes().Get(ctx, node, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if got := n.Annotations[netrequest.AnnotationKey]; got != want {
				return fmt.Errorf("annotation %q", got)
			}
			return nil
		})
		if err != nil {
			t.Fatalf("%s: annotation %s not %q within 30 s: %v", node, netrequest.AnnotationKey, want, err)
		}
	}
	// The proxy published after loading its networks dir, so it has
	// counted the broken file by now.
	if v := proxyMetric(t, nodes["node1"], `cri_proxy_network_config_errors_total{file=`); !strings.Contains(v, "broken.conflist") {
		t.Errorf("no config error metric for broken.conflist: %q", v)
	}

	create := func(name, node, request string) {
		t.Helper()
		pod, err := c.ToolboxPod(name, node)
		if err != nil {
			t.Fatal(err)
		}
		pod.Annotations = map[string]string{netrequest.AnnotationKey: request}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	create("multi", "node1", "blue,red")
	create("failing", "node1", "blue,failing")
	create("missing", "node2", "red")

	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	pod, err := localcluster.WaitPodRunning(wctx, cs, "default", "multi")
	cancel()
	if err != nil {
		t.Fatal(err)
	}
	inside, err := c.Kubectl(ctx, "exec", "multi", "--", "ip", "-4", "-o", "addr")
	if err != nil {
		t.Fatalf("exec ip addr in multi: %v", err)
	}
	t.Logf("multi, inside:\n%s", inside)
	want := map[string]string{"net1": "10.251.1.0/24", "net2": "10.252.1.0/24"}
	got := map[string]string{}
	for ifname, subnet := range want {
		addr := interfaceAddr(inside, ifname)
		_, sn, _ := net.ParseCIDR(subnet)
		if ip := net.ParseIP(addr); ip == nil || !sn.Contains(ip) {
			t.Errorf("multi: %s has %q inside the pod, want an address in %s", ifname, addr, subnet)
		}
		got[ifname] = addr
	}

	// The network-status annotation lists eth0, net1 and net2.
	var status []netrequest.NetworkStatus
	err = poll.Until(ctx, 200*time.Millisecond, 20*time.Second, func(context.Context) error {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "multi", metav1.GetOptions{})
		if err != nil {
			return err
		}
		v := p.Annotations[netrequest.StatusAnnotationKey]
		if v == "" {
			return errors.New("not set yet")
		}
		if err := json.Unmarshal([]byte(v), &status); err != nil {
			return poll.Fatal(fmt.Errorf("network-status %q: %w", v, err))
		}
		return nil
	})
	if err != nil {
		t.Fatalf("multi: no %s annotation within 20 s: %v", netrequest.StatusAnnotationKey, err)
	}
	wantStatus := []string{
		fmt.Sprintf("eth0 %s default", pod.Status.PodIP),
		fmt.Sprintf("net1 blue %s", got["net1"]),
		fmt.Sprintf("net2 red %s", got["net2"]),
	}
	var gotStatus []string
	for _, s := range status {
		if s.Default {
			gotStatus = append(gotStatus, fmt.Sprintf("%s %s default", s.Interface, strings.Join(s.IPs, ",")))
		} else {
			gotStatus = append(gotStatus, fmt.Sprintf("%s %s %s", s.Interface, s.Name, strings.Join(s.IPs, ",")))
		}
	}
	if !slices.Equal(gotStatus, wantStatus) {
		t.Errorf("network-status = %q, want %q", gotStatus, wantStatus)
	}

	// The failing network is named in the events, and rolled back: no
	// lease of "failing", and "blue" holds multi's lease only.
	msg := waitEvent(t, cs, "failing", "FailedCreatePodSandBox")
	for _, w := range []string{`network "failing"`, "no_such_setting"} {
		if !strings.Contains(msg, w) {
			t.Errorf("failing: event %q does not mention %q", msg, w)
		}
	}
	msg = waitEvent(t, cs, "missing", "FailedCreatePodSandBox")
	if !strings.Contains(msg, `"red" not available on this node`) {
		t.Errorf("missing: event %q does not name the missing network", msg)
	}
	ipam := filepath.Join(nodes["node1"].Dir, "e2e-ipam")
	if l := leases(t, ipam); !slices.Equal(l, []string{"blue/" + got["net1"], "red/" + got["net2"]}) {
		t.Errorf("leases on node1 = %v, want only multi's blue/%s and red/%s", l, got["net1"], got["net2"])
	}

	// Deleting the pods releases every address.
	for _, name := range []string{"multi", "failing", "missing"} {
		if err := cs.CoreV1().Pods("default").Delete(ctx, name, metav1.DeleteOptions{GracePeriodSeconds: new(int64)}); err != nil {
			t.Fatal(err)
		}
	}
	err = poll.Until(ctx, 250*time.Millisecond, 60*time.Second, func(context.Context) error {
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if l := leases(t, ipam); len(pods.Items) > 0 || len(l) > 0 {
			return fmt.Errorf("%d pods left, leases %v", len(pods.Items), l)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("pods and node1's leases not all gone within 60 s of deleting the pods: %v", err)
	}
	// Once kubelet has stopped the sandboxes, the proxy has detached them
	// (a retry of the failing pod's sandbox may still be rolling back).
	err = poll.Until(ctx, 250*time.Millisecond, 30*time.Second, func(context.Context) error {
		v, err := readProxyMetric(nodes["node1"], "cri_proxy_attachments ")
		if err != nil {
			return err
		}
		if !strings.HasSuffix(strings.TrimSpace(v), " 0") {
			return fmt.Errorf("%q", v)
		}
		return nil
	})
	if err != nil {
		t.Errorf("node1's proxy has attachments in use 30 s after the pods were deleted: %v", err)
	}

	c.downAndCompare(t, "proxy cluster up then down")
}

// interfaceAddr returns ifname's IPv4 address from `ip -4 -o addr` output.
func interfaceAddr(out, ifname string) string {
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) >= 4 && f[1] == ifname && f[2] == "inet" {
			addr, _, _ := strings.Cut(f[3], "/")
			return addr
		}
	}
	return ""
}

// waitEvent returns the message of the first event of reason about pod
// whose message contains every one of want.
func waitEvent(t *testing.T, cs kubernetes.Interface, pod, reason string, want ...string) string {
	t.Helper()
	ctx := t.Context()
	sel := fields.Set{"involvedObject.name": pod, "reason": reason}.String()
	var msg string
	err := poll.Until(ctx, 250*time.Millisecond, 60*time.Second, func(context.Context) error {
		evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			return err
		}
		var other []string
		for _, ev := range evs.Items {
			if containsAll(ev.Message, want) {
				msg = ev.Message
				return nil
			}
			other = append(other, ev.Message)
		}
		return fmt.Errorf("%d %s event(s) without %q: %q", len(other), reason, want, other)
	})
	if err != nil {
		t.Fatalf("%s: no %s event containing %q within 60 s: %v", pod, reason, want, err)
	}
	t.Logf("%s: %s: %s", pod, reason, msg)
	return msg
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// leases lists host-local's address files under dir as network/address.
func leases(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	nets, _ := os.ReadDir(dir)
	for _, n := range nets {
		files, err := os.ReadDir(filepath.Join(dir, n.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if net.ParseIP(f.Name()) != nil {
				out = append(out, n.Name()+"/"+f.Name())
			}
		}
	}
	slices.Sort(out)
	return out
}

// proxyMetric returns the lines of the node's proxy /metrics that start
// with prefix.
func proxyMetric(t *testing.T, n localcluster.Node, prefix string) string {
	t.Helper()
	v, err := readProxyMetric(n, prefix)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// readProxyMetric returns the lines of the node's proxy /metrics that
// start with prefix.
func readProxyMetric(n localcluster.Node, prefix string) (string, error) {
	resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/metrics", n.ProxyPort))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, prefix) {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n"), nil
}
