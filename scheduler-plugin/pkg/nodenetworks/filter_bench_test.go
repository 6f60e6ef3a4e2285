package nodenetworks

import (
	"context"
	"fmt"
	"testing"

	fwk "k8s.io/kube-scheduler/framework"
	"k8s.io/kubernetes/pkg/scheduler/framework"
)

// BenchmarkFilter runs Filter across 5000 nodes, 20% of which have network
// x, for a pod requesting x: one op is one node.
func BenchmarkFilter(b *testing.B) {
	p := newTestPlugin(b)
	const nodes = 5000
	infos := make([]fwk.NodeInfo, nodes)
	fit := make([]fwk.NodeInfo, 0, nodes/5)
	for i := range infos {
		nets := "a,b"
		if i%5 == 0 {
			nets = "a,b,x"
		}
		n := nodeWith(fmt.Sprintf("node-%d", i), nets)
		p.sawNode(n)
		infos[i] = nodeInfo(n)
		if i%5 == 0 {
			fit = append(fit, infos[i])
		}
	}
	pod := podWith("x,a")
	cs := framework.NewCycleState()
	if _, st := p.PreFilter(context.Background(), cs, pod, nil); !st.IsSuccess() {
		b.Fatal(st)
	}
	ctx := context.Background()
	b.Run("5000 nodes, 20% fit", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			p.Filter(ctx, cs, pod, infos[i%nodes])
		}
	})
	b.Run("fitting nodes", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if st := p.Filter(ctx, cs, pod, fit[i%len(fit)]); st != nil {
				b.Fatal(st)
			}
		}
	})
}

// TestFilterAllocatesNothingOnAFit guards the benchmark's claim in make test.
func TestFilterAllocatesNothingOnAFit(t *testing.T) {
	p := newTestPlugin(t)
	n := nodeWith("n1", "a,x")
	p.sawNode(n)
	ni := nodeInfo(n)
	pod := podWith("x")
	cs := framework.NewCycleState()
	if _, st := p.PreFilter(context.Background(), cs, pod, nil); !st.IsSuccess() {
		t.Fatal(st)
	}
	ctx := context.Background()
	if allocs := testing.AllocsPerRun(1000, func() { p.Filter(ctx, cs, pod, ni) }); allocs != 0 {
		t.Errorf("Filter allocates %.1f times per fitting node, want 0", allocs)
	}
}
