// Command schedbench measures what placing pods by network costs the
// scheduler and the API. It starts its own etcd and kube-apiserver (the
// patched one, with the PodNetworks gate on), creates 5000 nodes, 20% of
// them with network x (in status.networks, a label, and a ResourceSlice
// device), and times how fast a scheduler binds 1000 pods, in four arms:
//
//   - native: the patched kube-scheduler with --feature-gates=PodNetworks=true,
//     whose default profile has the in-tree NodeNetworks plugin; pods ask
//     for x in spec.networks;
//   - selector: what users do today for the same placement: the default
//     profile of the stock kube-scheduler; pods have a nodeSelector on the
//     label of the nodes with x;
//   - dra: the same placement through Dynamic Resource Allocation, as a DRA
//     driver for networks would offer it: every node has a ResourceSlice
//     with one device per network (attribute "network", allocatable to any
//     number of claims: a network is shared), a DeviceClass selects the
//     driver's devices, and each pod names a ResourceClaimTemplate asking
//     for the device whose network is x; kube-controller-manager's
//     resourceclaim controller makes each pod's claim, the stock
//     kube-scheduler's default profile (DynamicResources) allocates it;
//   - default: the same stock scheduler, pods unconstrained, for scale.
//
// Per round and arm the pods are created while no scheduler serves their
// scheduler name (and, for dra, their claims are made), then the arm's
// scheduler is started and the throughput is the number of pods bound over
// the time from the first bind to the last, so neither pod creation nor
// scheduler start-up is measured. Every bind is checked to be on a node
// with x, and every dra claim to be allocated x there. The apiserver's
// write counters (apiserver_request_total) are read before the pods are
// created and once they have settled after the last bind: writes and
// objects created per pod, by resource. Rounds rotate the arms' order. It
// prints every round, min/median/max per arm, the ratio of native to
// selector (target ≥ 0.95) and of native to dra, the writes per pod, and
// what a node's networks cost in stored objects (native: bytes in the Node;
// dra: a ResourceSlice per node), measured on probe objects.
//
// Nothing runs as root, and nothing listens but on free loopback ports:
// it does not disturb a local cluster.
//
//	schedbench [-nodes 5000] [-pods 1000] [-rounds 5] [-arms native,selector,dra,default] [-strict]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
)

const target = 0.95

// labelX marks the nodes with network x, for the selector arm.
const labelX = "bench.pod-networks.x-k8s.io/network-x"

type options struct {
	outputDir                 string
	etcd, apiserver           string
	scheduler, stockScheduler string
	controllerManager         string
	nodes, pods, rounds       int
	withPercent               int
	arms                      string
	strict, keep              bool
	timeout                   time.Duration
	verbosity                 int
}

// arm is one way of placing the pods.
type arm struct {
	name      string // also the pods' schedulerName and label
	what      string
	scheduler string   // binary
	flags     []string // extra scheduler flags
	// pod sets the arm's request on a pod, as JSON: this repository's
	// k8s.io/api is the stock one, without spec.networks.
	pod func(map[string]any)
	// check is a field the stored pod must keep (the native request).
	check []string
	// needsX: every pod must be bound to a node with x.
	needsX bool
	// claims: each pod has a ResourceClaim made from a template.
	claims bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "schedbench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("schedbench", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.outputDir, "output-dir", "_output", "the repository's build output dir: binaries default to its bin/ (stock) and bin/patched/")
	fs.StringVar(&o.etcd, "etcd", "", "etcd binary (default <output-dir>/bin/etcd)")
	fs.StringVar(&o.apiserver, "apiserver", "", "kube-apiserver with the PodNetworks API (default <output-dir>/bin/patched/kube-apiserver)")
	fs.StringVar(&o.scheduler, "scheduler", "", "kube-scheduler with the in-tree NodeNetworks plugin, for the native arm (default <output-dir>/bin/patched/kube-scheduler)")
	fs.StringVar(&o.stockScheduler, "stock-scheduler", "", "kube-scheduler for the selector, dra and default arms (default <output-dir>/bin/kube-scheduler)")
	fs.StringVar(&o.controllerManager, "controller-manager", "", "kube-controller-manager for the dra arm's resourceclaim controller (default <output-dir>/bin/kube-controller-manager)")
	fs.IntVar(&o.nodes, "nodes", 5000, "nodes to create")
	fs.IntVar(&o.withPercent, "with-x", 20, "percent of the nodes that have network x (a divisor of 100)")
	fs.IntVar(&o.pods, "pods", 1000, "pods per round and arm")
	fs.IntVar(&o.rounds, "rounds", 5, "rounds; each times every arm")
	fs.StringVar(&o.arms, "arms", "native,selector,dra,default", "the arms to run, comma-separated (native and selector are needed for the target)")
	fs.BoolVar(&o.strict, "strict", false, "exit non-zero when the target is missed")
	fs.BoolVar(&o.keep, "keep", false, "keep the work dir (logs, etcd data)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long a round may take")
	fs.IntVar(&o.verbosity, "scheduler-v", 0, "the schedulers' --v")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.withPercent < 1 || 100%o.withPercent != 0 {
		return fmt.Errorf("-with-x %d: must divide 100", o.withPercent)
	}
	out, err := filepath.Abs(o.outputDir)
	if err != nil {
		return err
	}
	def := func(p *string, rel string) {
		if *p == "" {
			*p = filepath.Join(out, "bin", rel)
		}
	}
	def(&o.etcd, "etcd")
	def(&o.apiserver, "patched/kube-apiserver")
	def(&o.scheduler, "patched/kube-scheduler")
	def(&o.stockScheduler, "kube-scheduler")
	def(&o.controllerManager, "kube-controller-manager")
	arms, err := selectArms(o)
	if err != nil {
		return err
	}
	withDRA := slices.ContainsFunc(arms, func(a arm) bool { return a.claims })
	for _, b := range []string{o.etcd, o.apiserver, o.scheduler, o.stockScheduler, o.controllerManager} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%w (make build builds it)", err)
		}
	}
	fmt.Println("schedbench", strings.Join(args, " "))

	dir, err := os.MkdirTemp("", "schedbench-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep {
			fmt.Println("work dir kept:", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	fmt.Println("starting etcd and kube-apiserver (PodNetworks=true)...")
	cp, err := startControlPlane(ctx, o, dir)
	if err != nil {
		return err
	}
	defer cp.stop()
	cs, err := kubernetes.NewForConfig(cp.config)
	if err != nil {
		return err
	}
	sz, err := measureSizes(ctx, cs, 16)
	if err != nil {
		return err
	}
	if withDRA {
		if err := cp.startClaimController(ctx, o, dir); err != nil {
			return err
		}
		if err := createDRAObjects(ctx, cs, benchNamespace); err != nil {
			return err
		}
	}
	start := time.Now()
	if err := createNodes(ctx, cs, o, withDRA); err != nil {
		return err
	}
	what := ""
	if withDRA {
		what = " and a ResourceSlice each"
	}
	fmt.Printf("created %d nodes (%d%% with network x)%s in %.1fs\n", o.nodes, o.withPercent, what, time.Since(start).Seconds())

	for _, a := range arms {
		fmt.Printf("  %-9s %s\n            %s\n", a.name, a.what, strings.Join(append([]string{a.scheduler}, a.flags...), " "))
	}
	rates := map[string][]float64{}
	written := map[string]writes{}
	for r := range o.rounds {
		for i := range arms {
			a := arms[(i+r)%len(arms)] // rotate the order
			res, err := round(ctx, cs, cp, o, dir, r, a)
			if err != nil {
				return fmt.Errorf("round %d, arm %s: %w", r+1, a.name, err)
			}
			fmt.Printf("  round %d %-9s %7.1f pods/s\n", r+1, a.name, res.rate)
			rates[a.name] = append(rates[a.name], res.rate)
			if written[a.name] == nil {
				written[a.name] = writes{}
			}
			written[a.name].add(res.writes)
		}
	}
	return report(o, arms, rates, written, sz)
}

// selectArms returns the arms -arms names, in the order given.
func selectArms(o options) ([]arm, error) {
	all := map[string]arm{
		"native": {name: "native", what: "spec.networks, in-tree NodeNetworks in the default profile",
			scheduler: o.scheduler, flags: []string{"--feature-gates=PodNetworks=true"},
			pod: func(pod map[string]any) {
				pod["spec"].(map[string]any)["networks"] = []map[string]string{{"name": "x"}}
			},
			check: []string{"spec", "networks"}, needsX: true},
		"selector": {name: "selector", what: "nodeSelector, default profile",
			scheduler: o.stockScheduler, needsX: true,
			pod: func(pod map[string]any) {
				pod["spec"].(map[string]any)["nodeSelector"] = map[string]string{labelX: "true"}
			}},
		"dra": {name: "dra", what: "a ResourceClaimTemplate asking for network x's device, default profile (DynamicResources)",
			scheduler: o.stockScheduler, pod: draPod, needsX: true, claims: true},
		"default": {name: "default", what: "unconstrained, default profile",
			scheduler: o.stockScheduler, pod: func(map[string]any) {}},
	}
	var arms []arm
	for _, n := range strings.Split(o.arms, ",") {
		a, ok := all[n]
		if !ok {
			return nil, fmt.Errorf("-arms: unknown arm %q (native, selector, dra, default)", n)
		}
		if slices.ContainsFunc(arms, func(b arm) bool { return b.name == n }) {
			return nil, fmt.Errorf("-arms: %q twice", n)
		}
		arms = append(arms, a)
	}
	return arms, nil
}

// report prints the summary and, with -strict, fails when native/selector
// misses the target.
func report(o options, arms []arm, rates map[string][]float64, written map[string]writes, sz sizes) error {
	fmt.Printf("\n%d nodes (%d%% with x), %d pods per round and arm, %d rounds; pods/s min / median / max:\n",
		o.nodes, o.withPercent, o.pods, o.rounds)
	for _, a := range arms {
		v := rates[a.name]
		fmt.Printf("  %-9s %7.1f / %7.1f / %7.1f   %s\n", a.name, slices.Min(v), median(v), slices.Max(v), a.what)
	}
	ratio := func(x, y string) (float64, []float64) {
		var perRound []float64
		for i := range rates[x] {
			perRound = append(perRound, rates[x][i]/rates[y][i])
		}
		return median(rates[x]) / median(rates[y]), perRound
	}
	missed := false
	if rates["native"] != nil && rates["selector"] != nil {
		r, per := ratio("native", "selector")
		verdict := "PASS"
		if r < target {
			verdict, missed = "FAIL", true
		}
		fmt.Printf("  native / selector: %.3f (medians; per round min %.3f, median %.3f, max %.3f), target ≥ %.2f: %s\n",
			r, slices.Min(per), median(per), slices.Max(per), target, verdict)
	}
	if rates["native"] != nil && rates["dra"] != nil {
		r, per := ratio("native", "dra")
		fmt.Printf("  native / dra: %.3f (medians; per round min %.3f, median %.3f, max %.3f)\n",
			r, slices.Min(per), median(per), slices.Max(per))
	}
	fmt.Printf("\nAPI writes per pod (apiserver_request_total, creation to settled binds, leases left out; all rounds):\n")
	for _, a := range arms {
		detail, total := written[a.name].perPod(o.pods * o.rounds)
		fmt.Printf("  %-9s %.2f writes, %.2f objects created: %s\n", a.name, total, written[a.name].objectsPerPod(o.pods*o.rounds), detail)
	}
	sz.print()
	if o.strict && missed {
		return errors.New("target missed")
	}
	return nil
}

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
