package app

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"sigs.k8s.io/pod-networks/internal/localcluster"
)

// leasesTimeout bounds the wait for every lease to be released.
const leasesTimeout = 60 * time.Second

// demoReleaseLeases deletes the demo pods and waits until no node holds a
// host-local lease in any network (the primary network's and the extra
// ones), printing the count per node and network before and after. It
// returns a timing line for the summary.
func demoReleaseLeases(ctx context.Context, c *localcluster.Cluster, cs kubernetes.Interface, out io.Writer) (string, error) {
	fmt.Fprintf(out, "\n== Deleting the demo pods gives every address back (host-local leases per node and network)\n")
	before, err := leaseCounts(c)
	if err != nil {
		return "", err
	}
	pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
	if err != nil {
		return "", err
	}
	start := time.Now()
	zero := int64(0)
	var deleted []string
	for _, p := range pods.Items {
		if !strings.HasPrefix(p.Name, "demo-") {
			continue
		}
		if err := cs.CoreV1().Pods("default").Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
			return "", err
		}
		deleted = append(deleted, p.Name)
	}
	sort.Strings(deleted)
	fmt.Fprintf(out, "deleted %s\n", strings.Join(deleted, ", "))
	var after map[string]map[string]int
	for {
		if after, err = leaseCounts(c); err != nil {
			return "", err
		}
		if total(after) == 0 {
			break
		}
		if time.Since(start) > leasesTimeout {
			return "", fmt.Errorf("leases still held %v after deleting the demo pods: %s", leasesTimeout, held(after))
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	released := time.Since(start)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tNETWORK\tLEASES BEFORE\tAFTER")
	for _, n := range c.NodeList() {
		for _, name := range sortedKeys(after[n.Name], before[n.Name]) {
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", n.Name, name, before[n.Name][name], after[n.Name][name])
		}
	}
	tw.Flush()
	fmt.Fprintf(out, "every lease released %.1fs after the deletion (%d before, 0 now)\n", released.Seconds(), total(before))
	return fmt.Sprintf("demo pods deleted to every lease released: %.1fs", released.Seconds()), nil
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
