package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"sigs.k8s.io/pod-networks/internal/localcluster"
)

// Main runs the command with the process's arguments and exits non-zero on
// error.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "localcluster: %v\n", err)
		os.Exit(1)
	}
}

const usage = `usage: localcluster <up|down|demo> [flags]

  up     bring a cluster up; fails without changing anything if one is up
  down   tear the cluster down and restore the host (quiet if nothing runs)
  demo   tear down any cluster, bring one up, run the demo scenario, leave it up

flags:
`

// Run executes one subcommand.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return errors.New(strings.TrimSpace(usage))
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet("localcluster "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	outputDir := fs.String("output-dir", defaultOutputDir(), "the repository's build output dir (binaries, images, cluster state)")
	o := localcluster.DefaultOptions(*outputDir)
	fs.IntVar(&o.Nodes, "nodes", o.Nodes, "number of nodes")
	stateDir := fs.String("state-dir", "", "cluster state and logs (default <output-dir>/cluster)")
	fs.StringVar(&o.RunDir, "run-dir", o.RunDir, "unix sockets and short runtime paths")
	fs.BoolVar(&o.Patched, "patched", o.Patched, "run the patched Kubernetes binaries (_output/bin/patched) instead of the stock ones")
	fs.BoolVar(&o.PodNetworksGate, "pod-networks-gate", o.PodNetworksGate, "the PodNetworks feature gate of the patched binaries")
	fs.BoolVar(&o.NetworkScheduler, "network-scheduler", o.NetworkScheduler, "run the kube-scheduler with the NodeNetworks plugin (false: the stock one)")
	fs.StringVar(&o.SchedulerBinary, "scheduler-binary", "", "kube-scheduler binary to run instead of the built one")
	fs.StringVar(&o.SchedulerConfig, "scheduler-config", "", "KubeSchedulerConfiguration file for --config (its kubeconfig is set to the scheduler's)")
	fs.BoolVar(&o.CRIProxy, "cri-proxy", o.CRIProxy, "run the CRI proxy in front of each node's containerd (false: kubelet talks to containerd)")
	nodeNets := fs.String("node-networks", "", "per-node extra networks: node1=DIR,node2=DIR (CNI conflists copied into each node's networks dir); "+
		"default: the repository's hack/demo/networks/<node>; \"none\" for none")
	skew := fs.String("node-skew", "", "nodes set apart from the others (version skew): node2=no-cri-proxy,node3=stock-kubelet+gate-off; "+
		"the demo's default, with the patched build and the gate on: -nodes 3 -node-skew node3=no-cri-proxy")
	fs.DurationVar(&o.ReadyTimeout, "timeout", o.ReadyTimeout, "bring-up timeout")
	var resultJSON *string
	if cmd == "demo" {
		resultJSON = fs.String("result-json", "", "where the demo writes its result as JSON (default <state-dir>/"+DemoResultFile+")")
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Paths derive from -output-dir unless set one by one.
	d := localcluster.DefaultOptions(*outputDir)
	o.BinDir, o.ImagesDir, o.StateDir = d.BinDir, d.ImagesDir, d.StateDir
	if *stateDir != "" {
		o.StateDir = *stateDir
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if cmd == "demo" && !set["nodes"] && !set["node-skew"] && o.Patched && o.PodNetworksGate && o.CRIProxy {
		// A node whose runtime cannot attach networks, to show a pod refused.
		o.Nodes, *skew = 3, "node3=no-cri-proxy"
	}
	var err error
	if o.NodeSkew, err = parseNodeSkew(*skew); err != nil {
		return err
	}
	switch *nodeNets {
	case "none":
	case "":
		o.NodeNetworks = demoNetworks(o.Nodes)
	default:
		o.NodeNetworks = map[string]string{}
		for _, kv := range strings.Split(*nodeNets, ",") {
			node, dir, ok := strings.Cut(kv, "=")
			if !ok || node == "" || dir == "" {
				return fmt.Errorf("-node-networks: %q is not node=dir", kv)
			}
			o.NodeNetworks[node] = dir
		}
	}
	o.Logf = func(format string, a ...any) { fmt.Fprintf(stderr, format+"\n", a...) }
	switch cmd {
	case "up":
		c, err := localcluster.Up(ctx, o)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "cluster up: %d nodes Ready in %.1fs\nexport KUBECONFIG=%s\n", c.Nodes, c.ReadyAfter().Seconds(), c.Kubeconfig())
		return nil
	case "down":
		return localcluster.Down(ctx, o)
	case "demo":
		return demo(ctx, o, stdout, *resultJSON)
	default:
		fs.Usage()
		return fmt.Errorf("unknown command %q", cmd)
	}
}

// parseNodeSkew parses -node-skew: node=kind[+kind...],... with the kinds
// no-cri-proxy, stock-kubelet and gate-off.
func parseNodeSkew(v string) (map[string]localcluster.NodeSkew, error) {
	out := map[string]localcluster.NodeSkew{}
	if v == "" {
		return out, nil
	}
	for _, kv := range strings.Split(v, ",") {
		node, kinds, ok := strings.Cut(kv, "=")
		if !ok || node == "" || kinds == "" {
			return nil, fmt.Errorf("-node-skew: %q is not node=kind", kv)
		}
		s := out[node]
		for _, k := range strings.Split(kinds, "+") {
			switch k {
			case "no-cri-proxy":
				s.NoCRIProxy = true
			case "stock-kubelet":
				s.StockKubelet = true
			case "gate-off":
				s.GateOff = true
			default:
				return nil, fmt.Errorf("-node-skew: %s: unknown kind %q (no-cri-proxy, stock-kubelet, gate-off)", node, k)
			}
		}
		out[node] = s
	}
	return out, nil
}

// demoNetworks returns the repository's demo networks
// (hack/demo/networks/<node>) of the nodes that have some.
func demoNetworks(nodes int) map[string]string {
	out := map[string]string{}
	root := filepath.Dir(defaultOutputDir())
	for i := 1; i <= nodes; i++ {
		node := fmt.Sprintf("node%d", i)
		dir := filepath.Join(root, "hack", "demo", "networks", node)
		if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
			out[node] = dir
		}
	}
	return out
}

// defaultOutputDir finds _output next to the repository's go.mod, starting
// from the working directory.
func defaultOutputDir() string {
	dir, _ := os.Getwd()
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return filepath.Join(d, "_output")
		}
		if d == filepath.Dir(d) {
			return filepath.Join(dir, "_output")
		}
	}
}
