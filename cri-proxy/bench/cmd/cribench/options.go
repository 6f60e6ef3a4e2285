package main

import (
	"flag"
	"os"
	"path/filepath"
)

// options are the measuring client's flags.
type options struct {
	small, lists, warmup  int
	sandboxes, containers int
	pods                  int
	attach, attachWarmup  int
	pluginGOMAXPROCS      int
	criProxy, anchor, h2  string
	candidates            bool
	cniBinDir             string
	strict                bool
}

func parseOptions(args []string) (options, error) {
	fs := flag.NewFlagSet("cribench", flag.ContinueOnError)
	var o options
	bin := "."
	if self, err := os.Executable(); err == nil {
		bin = filepath.Dir(self)
	}
	fs.IntVar(&o.small, "small", 4000, "rounds of each small call (Version, Status); a round calls every path once")
	fs.IntVar(&o.lists, "lists", 1000, "rounds of each list call")
	fs.IntVar(&o.warmup, "warmup", 100, "untimed rounds before each call's timed ones")
	fs.IntVar(&o.sandboxes, "sandboxes", 200, "sandboxes the fake runtime lists")
	fs.IntVar(&o.containers, "containers", 1000, "containers the fake runtime lists")
	fs.IntVar(&o.pods, "pods", 100, "concurrent RunPodSandbox calls (4 networks each) before the fresh cri-proxy's memory is read (0: skip)")
	fs.IntVar(&o.attach, "attach", 30, "rounds of the attach benchmark, each sequential and parallel (0: skip)")
	fs.IntVar(&o.attachWarmup, "attach-warmup", 2, "untimed rounds before the attach benchmark")
	fs.IntVar(&o.pluginGOMAXPROCS, "plugin-gomaxprocs", 1, "GOMAXPROCS of the plugins in the attach benchmark (the daemon's default)")
	fs.StringVar(&o.criProxy, "cri-proxy", "_output/bin/cri-proxy", "the cri-proxy binary measured")
	fs.StringVar(&o.anchor, "anchor", filepath.Join(bin, "grpcpassthrough"), "the grpc-go pass-through binary (cri-proxy/bench/cmd/grpcpassthrough)")
	fs.StringVar(&o.h2, "h2relay", filepath.Join(bin, "h2relay"), "the x/net/http2 relay binary (cri-proxy/bench/cmd/h2relay)")
	fs.BoolVar(&o.candidates, "candidates", true, "also measure the candidate forwarders (the x/net/http2 relay)")
	fs.StringVar(&o.cniBinDir, "cni-bin-dir", "_output/bin/cni", "CNI plugins (macvlan, host-local)")
	fs.BoolVar(&o.strict, "strict", false, "exit non-zero when a target is missed")
	err := fs.Parse(args)
	return o, err
}
