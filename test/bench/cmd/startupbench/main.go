// Command startupbench measures what the networks a pod asks for add to its
// start-up latency. It runs as root and brings up a real one-node local
// cluster (internal/localcluster: etcd, the patched kube-apiserver,
// kube-controller-manager and kube-scheduler with PodNetworks=true, whose
// default profile has the in-tree NodeNetworks plugin, containerd, the CRI
// proxy and the patched kubelet), whose node has 16 extra networks: bridge +
// host-local, each its own bridge, /24 and lease dir, cniVersion 1.0.0: with
// 1.1.0 the proxy would run CNI STATUS of every network at each of the
// cluster's 2 s resyncs, and GC every 10 s, behind every measurement.
//
// Arms are pods asking for 0, 1, 4 and 16 of them in spec.networks (-arms),
// the toolbox image running a long sleep, pinned to the node by
// nodeSelector. Per pod it measures, with the client's clock, the time from
// the create call's return to the pod seen Ready by a watch (the Ready
// condition's lastTransitionTime has 1 s granularity), and when the same
// watch first saw it bound. From the CRI proxy's /metrics, scraped before
// the create and after Ready, it takes the pod's RunPodSandbox (containerd's
// sandbox and primary network, then the proxy's attaches), CNI ADD time
// summed over its networks, and CreateContainer + StartContainer; the rest
// is kubelet's own work and status write, most of it (about 300 ms, the
// same in every arm) its volume manager waiting for the pod's
// service-account token volume, which it checks every 300 ms before it
// makes the sandbox.
//
// Pods run one at a time: each is deleted (grace 0) and the next created
// only once the watch saw it gone and the node holds what it held before
// (no lease, netns, veth, proxy record or intent left), so every
// measurement starts from the same node state. One unmeasured pod per arm
// warms the node up first (the bridges are made by the first ADD). A round
// runs -pods pods of each arm, the arms' order rotating every round so that
// machine noise hits all alike. It checks that the apiserver kept every
// pod's spec.networks and that the proxy's network-status annotation lists
// net1..netN on the requested networks, and for the first pod of each arm
// per round (and the warm-up) `ip -4 -o addr` inside the pod: net1..netN
// each with an address of its network, no other netK.
//
// It prints the command line, every round's per-arm median, then per arm
// min / median / p90 / max, the median's ratio to the 0-network arm's and
// the latency added per network ((median_N - median_0) / N), and where the
// time goes. It exits non-zero if a pod does not become Ready within
// -pod-timeout, a pod's networks are wrong, the proxy retried a sandbox or
// failed an attach during a measurement, or the host is not as it was
// before bring-up once the cluster is torn down (localcluster.Snapshot).
// Teardown runs on failure and on SIGINT or SIGTERM too. There is no
// target, hence no -strict: the numbers are for the KEP, and a ratio to the
// 0-network arm would mostly measure kubelet's fixed wait.
//
//	startupbench [-rounds 5] [-pods 6] [-arms 0,1,4,16] [-pod-timeout 1m]
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
	"strconv"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/pod-networks/internal/localcluster"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

type options struct {
	outputDir   string
	rounds      int
	pods        int
	arms        []int // networks per pod, one arm each
	podTimeout  time.Duration
	downTimeout time.Duration
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "startupbench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) (retErr error) {
	fs := flag.NewFlagSet("startupbench", flag.ContinueOnError)
	var o options
	arms := "0,1,4,16"
	fs.StringVar(&o.outputDir, "output-dir", "_output", "the repository's build output dir (binaries, images; the cluster's state goes to its cluster/)")
	fs.IntVar(&o.rounds, "rounds", 5, "rounds; each measures every arm")
	fs.IntVar(&o.pods, "pods", 6, "pods per arm and round, created one at a time")
	fs.StringVar(&arms, "arms", arms, fmt.Sprintf("comma-separated numbers of networks per pod, one arm each (0..%d; the node gets the largest)", netrequest.MaxNetworks))
	fs.DurationVar(&o.podTimeout, "pod-timeout", time.Minute, "how long a pod may take to become Ready, or to be gone after its delete")
	fs.DurationVar(&o.downTimeout, "down-timeout", 5*time.Minute, "how long teardown may take")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	var err error
	if o.arms, err = parseArms(arms); err != nil {
		return err
	}
	if o.rounds < 1 || o.pods < 1 {
		return fmt.Errorf("-rounds %d, -pods %d: both must be at least 1", o.rounds, o.pods)
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root: it brings up a local cluster")
	}
	if o.outputDir, err = filepath.Abs(o.outputDir); err != nil {
		return err
	}
	fmt.Printf("command: %s\n", shellJoin(append([]string{os.Args[0]}, args...)))

	netDir, err := os.MkdirTemp("", "startupbench-networks-")
	if err != nil {
		return err
	}
	// Removed last: Down validates the options, which name this dir.
	defer os.RemoveAll(netDir)
	nets := slices.Max(o.arms)
	if err := writeNetworks(netDir, nets); err != nil {
		return fmt.Errorf("write network configs in %s: %w", netDir, err)
	}

	lo := localcluster.DefaultOptions(o.outputDir)
	lo.Nodes = 1
	lo.Patched, lo.PodNetworksGate, lo.CRIProxy = true, true, true
	// The patched kube-scheduler: with the gate on, NodeNetworks is in its
	// default profile, as the KEP proposes.
	lo.NetworkScheduler = false
	lo.NodeNetworks = map[string]string{"node1": netDir}
	lo.Logf = func(format string, args ...any) { fmt.Fprintf(os.Stderr, "  [cluster] "+format+"\n", args...) }

	before, err := localcluster.Snapshot(lo)
	if err != nil {
		return fmt.Errorf("snapshot host state: %w", err)
	}
	if len(before.Processes) > 0 {
		return fmt.Errorf("a local cluster is already running (%s): only one may run at a time", strings.Join(before.Processes, ", "))
	}
	fmt.Printf("bringing up a one-node local cluster with %d extra networks (bridge + host-local)...\n", nets)
	c, err := localcluster.Up(ctx, lo)
	if errors.Is(err, localcluster.ErrAlreadyUp) {
		return fmt.Errorf("bring up the local cluster: %w", err) // not ours to tear down
	}
	// Also after a failed Up, which tore down what it started: the host
	// must be as it was all the same.
	defer func() {
		if err := teardown(lo, before, o.downTimeout); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()
	if err != nil {
		return fmt.Errorf("bring up the local cluster: %w", err)
	}
	fmt.Printf("cluster up: all nodes Ready after %.1fs\n", c.ReadyAfter().Seconds())

	cs, err := c.Client()
	if err != nil {
		return fmt.Errorf("client of the local cluster: %w", err)
	}
	b, err := newBench(ctx, c, cs, o, nets)
	if err != nil {
		return err
	}
	defer b.stop()
	return b.run(ctx)
}

// teardown brings the cluster down, whatever ended the run, and fails if
// the host is not as it was before bring-up.
func teardown(o localcluster.Options, before localcluster.HostState, timeout time.Duration) error {
	fmt.Println("tearing the cluster down...")
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if err := localcluster.Down(ctx, o); err != nil {
		return fmt.Errorf("tear down the local cluster: %w", err)
	}
	after, err := localcluster.Snapshot(o)
	if err != nil {
		return fmt.Errorf("snapshot host state after teardown: %w", err)
	}
	if d := before.Diff(after); len(d) > 0 {
		return fmt.Errorf("the host changed from before bring-up to after teardown:\n  %s", strings.Join(d, "\n  "))
	}
	fmt.Println("host state after teardown: as before bring-up")
	return nil
}

// parseArms parses -arms: distinct network counts in 0..MaxNetworks.
func parseArms(s string) ([]int, error) {
	var arms []int
	for f := range strings.SplitSeq(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 || n > netrequest.MaxNetworks {
			return nil, fmt.Errorf("-arms %q: %q is not a number of networks in 0..%d", s, f, netrequest.MaxNetworks)
		}
		if slices.Contains(arms, n) {
			return nil, fmt.Errorf("-arms %q: %d twice", s, n)
		}
		arms = append(arms, n)
	}
	if !slices.Contains(arms, 0) {
		return nil, fmt.Errorf("-arms %q: the 0-network arm is the baseline of the ratios and must be there", s)
	}
	return arms, nil
}

// shellJoin quotes args as a POSIX shell would need them.
func shellJoin(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.IndexFunc(a, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./=,:@%+", r))
		}) < 0 {
			out[i] = a
		} else {
			out[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
	}
	return strings.Join(out, " ")
}
