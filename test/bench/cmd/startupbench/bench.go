package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"sigs.k8s.io/pod-networks/internal/localcluster"
	"sigs.k8s.io/pod-networks/internal/poll"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

const (
	namespace = "default"
	// benchLabel marks the benchmark's pods, which its watch follows.
	benchLabel = "bench.pod-networks.x-k8s.io/startup"
)

// bench runs the measurements on a cluster that is up.
type bench struct {
	c    *localcluster.Cluster
	cs   kubernetes.Interface
	o    options
	nets int // extra networks on the node
	node localcluster.Node
	// proxyMetrics is the node's CRI proxy's /metrics address.
	proxyMetrics string
	http         *http.Client
	pods         *podWatch
	// baseline is what the node holds with no pod, once the warm-up made
	// the networks' bridges; nil before.
	baseline *localcluster.NodeState
}

// sample is one measured pod.
type sample struct {
	name     string
	networks int
	round    int // 1-based; 0 for the warm-up
	// total is from the create call's return to the watch seeing the pod
	// Ready; bound to it seeing the pod bound.
	total, bound time.Duration
	proxy        proxyMetrics // this pod's share of the proxy's metrics
}

func newBench(ctx context.Context, c *localcluster.Cluster, cs kubernetes.Interface, o options, nets int) (*bench, error) {
	nodes := c.NodeList()
	if len(nodes) != 1 {
		return nil, fmt.Errorf("cluster has %d nodes, want 1", len(nodes))
	}
	b := &bench{c: c, cs: cs, o: o, nets: nets, node: nodes[0],
		proxyMetrics: fmt.Sprintf("127.0.0.1:%d", nodes[0].ProxyPort), http: &http.Client{}}
	if err := b.waitNodeNetworks(ctx); err != nil {
		return nil, err
	}
	w, err := watchPods(ctx, cs, namespace, benchLabel)
	if err != nil {
		return nil, err
	}
	b.pods = w
	return b, nil
}

func (b *bench) stop() { b.pods.stop() }

// waitNodeNetworks waits until the node's status.networks (the patched
// API: read as JSON) lists exactly the extra networks: the proxy found
// every config valid, its plugins present, and accepted none as colliding
// with the primary network.
func (b *bench) waitNodeNetworks(ctx context.Context) error {
	var want []string
	for k := 1; k <= b.nets; k++ {
		want = append(want, networkName(k))
	}
	err := poll.Until(ctx, 200*time.Millisecond, time.Minute, func(ctx context.Context) error {
		raw, err := b.cs.CoreV1().RESTClient().Get().Resource("nodes").Name(b.node.Name).Do(ctx).Raw()
		if err != nil {
			return err
		}
		var n struct {
			Status struct {
				Networks []string `json:"networks"`
			} `json:"status"`
		}
		if err := json.Unmarshal(raw, &n); err != nil {
			return poll.Fatal(fmt.Errorf("decode node %s: %w", b.node.Name, err))
		}
		got := slices.Sorted(slices.Values(n.Status.Networks))
		if !slices.Equal(got, want) {
			return fmt.Errorf("status.networks = %q", got)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("node %s does not list its %d networks in status.networks (proxy log %s): %w",
			b.node.Name, b.nets, b.c.LogPath(b.node.Name+"-cri-proxy"), err)
	}
	return nil
}

// run warms the node up, measures every round and prints the report.
func (b *bench) run(ctx context.Context) error {
	fmt.Printf("%s: %d extra networks %s..%s (bridge + host-local, each its own bridge, /24 and lease dir), "+
		"CRI proxy with its default attach concurrency (4)\n", b.node.Name, b.nets, networkName(1), networkName(b.nets))
	fmt.Printf("arms: %s networks per pod (spec.networks); %d rounds × %d pods per arm, one pod at a time, the arms' order rotating every round\n",
		joinInts(b.o.arms, ", "), b.o.rounds, b.o.pods)

	fmt.Print("warm-up, one pod per arm (not measured):")
	for _, n := range b.o.arms {
		s, err := b.measure(ctx, fmt.Sprintf("sb-warmup-n%02d", n), n, true)
		if err != nil {
			return fmt.Errorf("warm-up pod with %d networks: %w", n, err)
		}
		fmt.Printf("  %d: %s", n, ms(s.total))
	}
	fmt.Println()
	base, err := b.c.NodeState(b.node.Name)
	if err != nil {
		return fmt.Errorf("state of node %s: %w", b.node.Name, err)
	}
	b.baseline = &base

	var samples []sample
	for r := 1; r <= b.o.rounds; r++ {
		order := slices.Concat(b.o.arms[(r-1)%len(b.o.arms):], b.o.arms[:(r-1)%len(b.o.arms)])
		var line []string
		for _, n := range order {
			var totals []time.Duration
			for i := 1; i <= b.o.pods; i++ {
				s, err := b.measure(ctx, fmt.Sprintf("sb-r%d-n%02d-%d", r, n, i), n, i == 1)
				if err != nil {
					return fmt.Errorf("round %d, %d networks, pod %d: %w", r, n, i, err)
				}
				s.round = r
				samples = append(samples, s)
				totals = append(totals, s.total)
			}
			line = append(line, fmt.Sprintf("%2d: %s", n, ms(median(totals))))
		}
		fmt.Printf("round %d (order %s) medians:  %s\n", r, joinInts(order, ","), strings.Join(line, "   "))
	}
	report(samples, b.o.arms)
	if a := anomalies(samples); len(a) > 0 {
		return fmt.Errorf("measurements are not clean start-ups:\n  %s", strings.Join(a, "\n  "))
	}
	return nil
}

// measure creates one pod asking for the first n networks, times it to
// Ready, checks its networks (inside it too if inside), deletes it and
// waits until the node holds what it held before.
func (b *bench) measure(ctx context.Context, name string, n int, inside bool) (sample, error) {
	s := sample{name: name, networks: n}
	body, err := b.podJSON(name, n)
	if err != nil {
		return s, err
	}
	before, err := scrapeProxy(ctx, b.http, b.proxyMetrics)
	if err != nil {
		return s, err
	}
	raw, err := b.cs.CoreV1().RESTClient().Post().Namespace(namespace).Resource("pods").Body(body).Do(ctx).Raw()
	created := time.Now()
	if err != nil {
		return s, fmt.Errorf("create pod %s: %w", name, err)
	}
	uid, err := checkStored(raw, n)
	if err != nil {
		return s, fmt.Errorf("pod %s: %w", name, err)
	}
	defer b.pods.forget(uid)

	err = b.pods.wait(ctx, uid, b.o.podTimeout, func(p *podSeen) (string, error) {
		switch {
		case p == nil:
			return "not seen by the watch yet", nil
		case p.gone:
			return "", errors.New("deleted before it was Ready")
		case p.pod.Status.Phase == corev1.PodFailed || p.pod.Status.Phase == corev1.PodSucceeded:
			return "", fmt.Errorf("ended: %s", p.pod.Status.Phase)
		case !p.ready.IsZero():
			return "", nil
		case p.pod.Spec.NodeName == "":
			return "not bound", nil
		}
		return fmt.Sprintf("%s on %s, not Ready", p.pod.Status.Phase, p.pod.Spec.NodeName), nil
	})
	if err != nil {
		return s, fmt.Errorf("pod %s not Ready: %w%s", name, err, b.events(ctx, uid))
	}
	seen := b.pods.get(uid)
	s.total, s.bound = seen.ready.Sub(created), seen.bound.Sub(created)
	after, err := scrapeProxy(ctx, b.http, b.proxyMetrics)
	if err != nil {
		return s, err
	}
	s.proxy = after.sub(before)

	if seen.pod.Spec.NodeName != b.node.Name {
		return s, fmt.Errorf("pod %s runs on %q, want %s", name, seen.pod.Spec.NodeName, b.node.Name)
	}
	if n > 0 {
		if err := b.checkNetworkStatus(ctx, uid, n); err != nil {
			return s, fmt.Errorf("pod %s: %w", name, err)
		}
	}
	if inside {
		out, err := b.c.Kubectl(ctx, "exec", "-n", namespace, name, "--", "ip", "-4", "-o", "addr")
		if err != nil {
			return s, fmt.Errorf("pod %s: %w", name, err)
		}
		if err := checkInside(out, n, b.node.Index); err != nil {
			return s, fmt.Errorf("pod %s, inside: %w", name, err)
		}
	}
	return s, b.remove(ctx, name, uid)
}

// podJSON is the toolbox pod asking for the first n networks, as JSON:
// this repository's k8s.io/api is the stock one, without spec.networks.
func (b *bench) podJSON(name string, n int) ([]byte, error) {
	pod, err := b.c.ToolboxPod(name, b.node.Name)
	if err != nil {
		return nil, err
	}
	pod.Labels[benchLabel] = "true"
	raw, err := json.Marshal(pod)
	if err != nil {
		return nil, err
	}
	var obj map[string]any
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, err
	}
	if n > 0 {
		var nets []map[string]string
		for k := 1; k <= n; k++ {
			nets = append(nets, map[string]string{"name": networkName(k)})
		}
		obj["spec"].(map[string]any)["networks"] = nets
	}
	return json.Marshal(obj)
}

// checkStored returns the UID of the pod the apiserver stored, and fails
// unless it kept spec.networks as asked: the field is dropped by a stock
// apiserver or with the gate off.
func checkStored(raw []byte, n int) (types.UID, error) {
	var p struct {
		Metadata struct {
			UID types.UID `json:"uid"`
		} `json:"metadata"`
		Spec struct {
			Networks []struct {
				Name string `json:"name"`
			} `json:"networks"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(raw, &p); err != nil {
		return "", fmt.Errorf("decode the stored pod: %w", err)
	}
	var got []string
	for _, nw := range p.Spec.Networks {
		got = append(got, nw.Name)
	}
	var want []string
	for k := 1; k <= n; k++ {
		want = append(want, networkName(k))
	}
	if !slices.Equal(got, want) {
		return "", fmt.Errorf("stored spec.networks = %q, want %q: is the apiserver patched, with PodNetworks=true?", got, want)
	}
	return p.Metadata.UID, nil
}

// checkNetworkStatus waits for the proxy's network-status annotation on
// the pod and checks it lists net1..netN on the first n networks, each
// with an address.
func (b *bench) checkNetworkStatus(ctx context.Context, uid types.UID, n int) error {
	return b.pods.wait(ctx, uid, 30*time.Second, func(p *podSeen) (string, error) {
		if p == nil || p.gone {
			return "", errors.New("gone while waiting for its network-status")
		}
		v := p.pod.Annotations[netrequest.StatusAnnotationKey]
		if v == "" {
			return "no " + netrequest.StatusAnnotationKey + " annotation", nil
		}
		var status []netrequest.NetworkStatus
		if err := json.Unmarshal([]byte(v), &status); err != nil {
			return "", fmt.Errorf("%s %q: %w", netrequest.StatusAnnotationKey, v, err)
		}
		var got, want []string
		for _, st := range status {
			if !st.Default && len(st.IPs) > 0 {
				got = append(got, st.Interface+"="+st.Name)
			}
		}
		for k := 1; k <= n; k++ {
			want = append(want, fmt.Sprintf("net%d=%s", k, networkName(k)))
		}
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			return "", fmt.Errorf("%s lists %q, want %q", netrequest.StatusAnnotationKey, got, want)
		}
		return "", nil
	})
}

// remove deletes the pod (grace 0), waits until the watch saw it gone and
// the node holds what it held before the pod: no lease, netns, veth, proxy
// record or intent of it left.
func (b *bench) remove(ctx context.Context, name string, uid types.UID) error {
	err := b.cs.CoreV1().Pods(namespace).Delete(ctx, name, metav1.DeleteOptions{
		GracePeriodSeconds: new(int64(0)), Preconditions: &metav1.Preconditions{UID: &uid}})
	if err != nil {
		return fmt.Errorf("delete pod %s: %w", name, err)
	}
	err = b.pods.wait(ctx, uid, b.o.podTimeout, func(p *podSeen) (string, error) {
		if p != nil && p.gone {
			return "", nil
		}
		return "not deleted yet", nil
	})
	if err != nil {
		return fmt.Errorf("pod %s not gone: %w", name, err)
	}
	err = poll.Until(ctx, 100*time.Millisecond, b.o.podTimeout, func(context.Context) error {
		now, err := b.c.NodeState(b.node.Name)
		if err != nil {
			return poll.Fatal(err)
		}
		if b.baseline != nil {
			if d := b.baseline.Diff(now); len(d) > 0 {
				return errors.New(strings.Join(d, "; "))
			}
			return nil
		}
		// Before the baseline: nothing of a pod, the bridges may stay.
		var held []string
		for _, l := range now.Links {
			if !strings.HasSuffix(l, " (bridge)") {
				held = append(held, l)
			}
		}
		if now.LeaseCount() > 0 || len(now.NetNS) > 0 || len(now.ProxyRecords) > 0 || len(now.ProxyIntents) > 0 || len(held) > 0 {
			return fmt.Errorf("%s; links %q", now.Counts(), held)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("node %s still holds pod %s's resources: %w", b.node.Name, name, err)
	}
	return nil
}

// events returns the pod's latest events, for an error.
func (b *bench) events(ctx context.Context, uid types.UID) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	sel := fields.OneTermEqualSelector("involvedObject.uid", string(uid)).String()
	evs, err := b.cs.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil || len(evs.Items) == 0 {
		return ""
	}
	items := evs.Items
	slices.SortFunc(items, func(a, b corev1.Event) int { return a.LastTimestamp.Compare(b.LastTimestamp.Time) })
	var out []string
	for _, e := range items[max(0, len(items)-5):] {
		out = append(out, fmt.Sprintf("%s (x%d): %s", e.Reason, max(e.Count, 1), e.Message))
	}
	return "; its events: " + strings.Join(out, " | ")
}
