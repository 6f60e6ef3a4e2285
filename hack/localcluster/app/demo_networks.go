package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"sigs.k8s.io/pod-networks/internal/localcluster"
	"sigs.k8s.io/pod-networks/internal/poll"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// pollInterval is how often the demo looks again at what it waits for.
const pollInterval = 200 * time.Millisecond

// demoNetworksScenario shows the CRI proxy and the scheduler plugin at work
// with the demo networks (hack/demo/networks): each node's published
// networks; a pod asking for blue and red, placed on the node that has both,
// with the addresses it sees inside; a pod asking for green, which no node
// has, Pending with the reason; then a node gaining green and the pod
// scheduled there; then a pod asking for broken, whose plugin chain fails
// mid-way, with the event naming the network and the cause; then the
// network access policy (demo_access.go). It fills
// p's result's Networks and prints each section once it is complete.
func demoNetworksScenario(ctx context.Context, c *localcluster.Cluster, cs kubernetes.Interface, p *demoPrinter) error {
	res := &DemoNetworks{}
	p.r.Networks = res // printed section by section below, as each is complete

	for _, n := range c.NodeList() {
		if !n.CRIProxy {
			continue // nothing publishes its networks
		}
		var v string
		err := poll.Until(ctx, pollInterval, 30*time.Second, func(ctx context.Context) error {
			node, err := cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			var ok bool
			if v, ok = node.Annotations[netrequest.AnnotationKey]; !ok {
				return errors.New("not published yet")
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("%s: no %s annotation: %w", n.Name, netrequest.AnnotationKey, err)
		}
		res.Published = append(res.Published, DemoNodeNetworks{Node: n.Name, Networks: splitNetworks(v)})
	}
	if err := p.through(sectionPublished); err != nil {
		return err
	}

	if c.Patched && c.PodNetworksGate {
		res.Status = []DemoNodeNetworks{}
		for _, n := range c.NodeList() {
			nets := []string{}
			if !n.CRIProxy {
				res.Status = append(res.Status, DemoNodeNetworks{Node: n.Name, Networks: nets})
				continue // containerd alone reports none
			}
			err := poll.Until(ctx, pollInterval, 30*time.Second, func(ctx context.Context) error {
				out, err := c.Kubectl(ctx, "get", "node", n.Name, "-o", "jsonpath={.status.networks}")
				if err != nil {
					return err
				}
				if out == "" {
					return errors.New("status.networks empty")
				}
				if err := json.Unmarshal([]byte(out), &nets); err != nil {
					return poll.Fatal(fmt.Errorf("status.networks %q is not a list of names: %w", out, err))
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("%s: no status.networks: %w", n.Name, err)
			}
			res.Status = append(res.Status, DemoNodeNetworks{Node: n.Name, Networks: nets})
		}
	}
	if err := p.through(sectionStatus); err != nil {
		return err
	}

	if err := demoMultiPod(ctx, c, cs, res); err != nil {
		return fmt.Errorf("%s: %w", res.Multi.Pod, err)
	}
	if err := p.through(sectionMulti); err != nil {
		return err
	}
	if c.Patched && c.PodNetworksGate {
		if err := demoNative(ctx, c, cs, res); err != nil {
			return err
		}
	}
	if err := p.through(sectionNative); err != nil {
		return err
	}
	if err := demoPendingPod(ctx, c, cs, res); err != nil {
		return fmt.Errorf("%s: %w", res.Pending.Pod, err)
	}
	if err := p.through(sectionPending); err != nil {
		return err
	}
	if slices.ContainsFunc(res.Published, func(n DemoNodeNetworks) bool { return slices.Contains(n.Networks, "broken") }) {
		res.Broken = &DemoBrokenPod{}
		if err := demoBrokenNetwork(ctx, cs, c, res.Broken); err != nil {
			return fmt.Errorf("%s: %w", res.Broken.Pod, err)
		}
	}
	if err := p.through(sectionBroken); err != nil {
		return err
	}
	if err := demoAccess(ctx, c, cs, res); err != nil {
		return fmt.Errorf("access policy: %w", err)
	}
	return p.through(sectionAccess)
}

// demoMultiPod creates a pod asking for blue and red and waits until it
// runs, on the node that has both, with their interfaces inside and the
// network-status annotation.
func demoMultiPod(ctx context.Context, c *localcluster.Cluster, cs kubernetes.Interface, res *DemoNetworks) error {
	m := &res.Multi
	m.Pod, m.Request = "demo-networks", []string{"blue", "red"}
	start := time.Now()
	if err := createWithNetworks(ctx, c, cs, m.Pod, m.Request); err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	pod, err := localcluster.WaitPodRunning(wctx, cs, "default", m.Pod)
	cancel()
	if err != nil {
		return err
	}
	m.RunningSeconds = time.Since(start).Seconds()
	m.Node = pod.Spec.NodeName
	if has := publishedOn(res.Published, m.Node); !containsAll(has, m.Request) {
		return fmt.Errorf("scheduled on %s, which has %v, not all of %v", m.Node, has, m.Request)
	}
	inside, err := c.Kubectl(ctx, "exec", m.Pod, "--", "ip", "-4", "-o", "addr")
	if err != nil {
		return err
	}
	if m.Inside = podInterfaces(inside); len(m.Inside) == 0 {
		return fmt.Errorf("no address but lo inside the pod: %q", inside)
	}
	var st string
	err = poll.Until(ctx, pollInterval, 20*time.Second, func(ctx context.Context) error {
		p, err := cs.CoreV1().Pods("default").Get(ctx, m.Pod, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if st = p.Annotations[netrequest.StatusAnnotationKey]; st == "" {
			return errors.New("not set yet")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("no %s annotation: %w", netrequest.StatusAnnotationKey, err)
	}
	var status []netrequest.NetworkStatus
	if err := json.Unmarshal([]byte(st), &status); err != nil {
		return fmt.Errorf("%s: %w", netrequest.StatusAnnotationKey, err)
	}
	if len(status) == 0 {
		return fmt.Errorf("%s lists no network: %s", netrequest.StatusAnnotationKey, st)
	}
	for _, s := range status {
		m.Status = append(m.Status, DemoAttachment{Interface: s.Interface, Network: s.Name, IPs: nonNil(s.IPs), Default: s.Default})
	}
	return nil
}

// demoPendingPod creates a pod asking for green, which no node has, waits
// for the scheduler to say so, then gives the last node green and waits
// until the pod is scheduled.
func demoPendingPod(ctx context.Context, c *localcluster.Cluster, cs kubernetes.Interface, res *DemoNetworks) error {
	p := &res.Pending
	p.Pod, p.Request = "demo-green", []string{"green"}
	if err := createWithNetworks(ctx, c, cs, p.Pod, p.Request); err != nil {
		return err
	}
	// The scheduler has looked at the pod and said why it cannot place it.
	msg, err := waitEvent(ctx, cs, p.Pod, "FailedScheduling", "green")
	if err != nil {
		return err
	}
	p.Reason = msg

	var last localcluster.Node
	for _, n := range c.NodeList() {
		if n.CRIProxy {
			last = n
		}
	}
	p.GainedBy = last.Name
	green := fmt.Sprintf(`{"cniVersion": "1.1.0", "name": "green", "plugins": [
  {"type": "bridge", "bridge": "pngreen%d", "isGateway": false, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.250.%d.0/24"}]], "dataDir": %q}}]}`,
		last.Index, last.Index, filepath.Join(last.Dir, "networks-ipam"))
	gained := time.Now()
	if err := os.WriteFile(filepath.Join(last.NetworksDir(), "green.conflist"), []byte(green), 0o644); err != nil {
		return err
	}
	err = poll.Until(ctx, pollInterval, 30*time.Second, func(ctx context.Context) error {
		pod, err := cs.CoreV1().Pods("default").Get(ctx, p.Pod, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.ScheduledOn = pod.Spec.NodeName; p.ScheduledOn == "" {
			return errors.New("still Pending")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("not scheduled after %s gained green: %w", last.Name, err)
	}
	p.ScheduledSeconds = time.Since(gained).Seconds()
	return nil
}

// demoBrokenNetwork creates a pod asking for "broken", whose chain gets an
// address from host-local and then fails in the tuning plugin, and waits
// for the FailedCreatePodSandBox event kubelet records: the proxy's error
// names the network and the plugin's cause.
func demoBrokenNetwork(ctx context.Context, cs kubernetes.Interface, c *localcluster.Cluster, b *DemoBrokenPod) error {
	b.Pod, b.Request = "demo-broken", []string{"broken"}
	start := time.Now()
	if err := createWithNetworks(ctx, c, cs, b.Pod, b.Request); err != nil {
		return err
	}
	msg, err := waitEvent(ctx, cs, b.Pod, "FailedCreatePodSandBox", `"broken"`)
	if err != nil {
		return err
	}
	b.Event, b.EventSeconds = msg, time.Since(start).Seconds()
	pod, err := cs.CoreV1().Pods("default").Get(ctx, b.Pod, metav1.GetOptions{})
	if err != nil {
		return err
	}
	b.Node, b.Phase = pod.Spec.NodeName, string(pod.Status.Phase)
	return nil
}

// waitEvent waits up to a minute for an event of reason about the pod
// whose message contains want, and returns the message.
func waitEvent(ctx context.Context, cs kubernetes.Interface, pod, reason, want string) (string, error) {
	var msg string
	sel := fields.Set{"involvedObject.name": pod, "reason": reason}.String()
	err := poll.Until(ctx, pollInterval, 60*time.Second, func(ctx context.Context) error {
		evs, err := cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: sel})
		if err != nil {
			return err
		}
		for _, ev := range evs.Items {
			if strings.Contains(ev.Message, want) {
				msg = ev.Message
				return nil
			}
		}
		return fmt.Errorf("%d %s event(s), none containing %s", len(evs.Items), reason, want)
	})
	if err != nil {
		return "", fmt.Errorf("no %s event naming %s: %w", reason, want, err)
	}
	return msg, nil
}

// createWithNetworks creates a toolbox pod asking for the networks,
// placed by the scheduler.
func createWithNetworks(ctx context.Context, c *localcluster.Cluster, cs kubernetes.Interface, name string, networks []string) error {
	pod, err := c.ToolboxPod(name, "")
	if err != nil {
		return err
	}
	pod.Spec.NodeSelector = nil
	pod.Annotations = map[string]string{netrequest.AnnotationKey: strings.Join(networks, ",")}
	_, err = cs.CoreV1().Pods(pod.Namespace).Create(ctx, pod, metav1.CreateOptions{})
	return err
}

// splitNetworks splits a node annotation's value; "" is no network.
func splitNetworks(v string) []string {
	if v == "" {
		return []string{}
	}
	return strings.Split(v, ",")
}

// podInterfaces returns the interfaces but lo of `ip -4 -o addr` output,
// with their addresses.
func podInterfaces(out string) []DemoInterface {
	var ifs []DemoInterface
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(l); len(f) >= 4 && f[1] != "lo" {
			ifs = append(ifs, DemoInterface{Interface: f[1], Address: f[3]})
		}
	}
	return ifs
}

func publishedOn(published []DemoNodeNetworks, node string) []string {
	for _, n := range published {
		if n.Node == node {
			return n.Networks
		}
	}
	return nil
}

func containsAll(have, want []string) bool {
	for _, w := range want {
		if !slices.Contains(have, w) {
			return false
		}
	}
	return true
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
