package app

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"sigs.k8s.io/pod-networks/internal/localcluster"
	"sigs.k8s.io/pod-networks/internal/poll"
)

// leasesTimeout bounds the wait for every lease to be released.
const leasesTimeout = 60 * time.Second

// demoReleaseLeases deletes the demo pods and waits until no node holds a
// host-local lease in any network (the primary network's and the extra
// ones); it returns the count per node and network before and after.
func demoReleaseLeases(ctx context.Context, c *localcluster.Cluster, cs kubernetes.Interface) (DemoLeases, error) {
	res := DemoLeases{Deleted: []string{}, Counts: []DemoLeaseCount{}}
	before, err := leaseCounts(c)
	if err != nil {
		return res, err
	}
	pods, err := cs.CoreV1().Pods(metav1.NamespaceAll).List(ctx, metav1.ListOptions{})
	if err != nil {
		return res, err
	}
	start := time.Now()
	zero := int64(0)
	for _, p := range pods.Items {
		if !strings.HasPrefix(p.Name, "demo-") {
			continue
		}
		if err := cs.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			return res, err
		}
		name := p.Name
		if p.Namespace != metav1.NamespaceDefault {
			name = p.Namespace + "/" + name
		}
		res.Deleted = append(res.Deleted, name)
	}
	sort.Strings(res.Deleted)
	var after map[string]map[string]int
	err = poll.Until(ctx, 100*time.Millisecond, leasesTimeout, func(context.Context) error {
		var err error
		if after, err = leaseCounts(c); err != nil {
			return poll.Fatal(err)
		}
		if total(after) > 0 {
			return fmt.Errorf("leases still held: %s", held(after))
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("leases not all released within %v of deleting %s: %w", leasesTimeout, strings.Join(res.Deleted, ", "), err)
	}
	res.ReleasedSeconds = time.Since(start).Seconds()
	for _, n := range c.NodeList() {
		for _, name := range sortedKeys(after[n.Name], before[n.Name]) {
			res.Counts = append(res.Counts, DemoLeaseCount{Node: n.Name, Network: name, Before: before[n.Name][name], After: after[n.Name][name]})
		}
	}
	if len(res.Counts) == 0 {
		return res, errors.New("no node has a network with host-local leases to count")
	}
	res.Before = total(before)
	return res, nil
}

// leaseCounts returns, per node and network, how many host-local leases
// there are.
func leaseCounts(c *localcluster.Cluster) (map[string]map[string]int, error) {
	out := map[string]map[string]int{}
	for _, n := range c.NodeList() {
		s, err := c.NodeState(n.Name)
		if err != nil {
			return nil, err
		}
		out[n.Name] = map[string]int{}
		for name, l := range s.Leases {
			out[n.Name][name] = len(l)
		}
	}
	return out, nil
}

func total(counts map[string]map[string]int) int {
	t := 0
	for _, m := range counts {
		for _, v := range m {
			t += v
		}
	}
	return t
}

// held describes the leases left, as node/network=count.
func held(counts map[string]map[string]int) string {
	var out []string
	for node, m := range counts {
		for name, v := range m {
			if v > 0 {
				out = append(out, fmt.Sprintf("%s/%s=%d", node, name, v))
			}
		}
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func sortedKeys(ms ...map[string]int) []string {
	seen := map[string]bool{}
	var out []string
	for _, m := range ms {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}
