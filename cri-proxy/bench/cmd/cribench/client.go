package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// options are the measuring client's flags.
type options struct {
	small, lists, warmup  int
	sandboxes, containers int
	attach, attachWarmup  int
	pluginGOMAXPROCS      int
	cniBinDir             string
	strict                bool
}

// runClient starts the fake runtime and the proxy, runs every benchmark
// and prints the report.
func runClient(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("cribench", flag.ContinueOnError)
	var o options
	fs.IntVar(&o.small, "small", 2000, "iterations of each small call (Version, Status), each direct and proxied")
	fs.IntVar(&o.lists, "lists", 300, "iterations of each list call, each direct and proxied")
	fs.IntVar(&o.warmup, "warmup", 50, "untimed iterations before each benchmark")
	fs.IntVar(&o.sandboxes, "sandboxes", 200, "sandboxes the fake runtime lists")
	fs.IntVar(&o.containers, "containers", 1000, "containers the fake runtime lists")
	fs.IntVar(&o.attach, "attach", 15, "rounds of the attach benchmark, each sequential and parallel (0: skip it)")
	fs.IntVar(&o.attachWarmup, "attach-warmup", 2, "untimed rounds before the attach benchmark")
	fs.IntVar(&o.pluginGOMAXPROCS, "plugin-gomaxprocs", 1, "GOMAXPROCS of the plugins in the attach benchmark (the daemon's default)")
	fs.StringVar(&o.cniBinDir, "cni-bin-dir", "_output/bin/cni", "CNI plugins for the attach benchmark")
	fs.BoolVar(&o.strict, "strict", false, "exit non-zero when a target is missed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "cribench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	runtimeSock, proxySock := filepath.Join(dir, "runtime.sock"), filepath.Join(dir, "proxy.sock")

	runtime, err := startRole(ctx, runtimeSock, "runtime", "-socket", runtimeSock,
		"-sandboxes", strconv.Itoa(o.sandboxes), "-containers", strconv.Itoa(o.containers))
	if err != nil {
		return err
	}
	defer runtime.stop()
	proxy, err := startRole(ctx, proxySock, "proxy", "-listen", proxySock, "-upstream", runtimeSock)
	if err != nil {
		return err
	}
	defer proxy.stop()

	direct, err := dialKubeletLike(runtimeSock)
	if err != nil {
		return err
	}
	defer direct.Close()
	proxied, err := dialKubeletLike(proxySock)
	if err != nil {
		return err
	}
	defer proxied.Close()
	e := &env{
		opts:    o,
		direct:  runtimeapi.NewRuntimeServiceClient(direct),
		proxied: runtimeapi.NewRuntimeServiceClient(proxied),
	}

	var rep report
	for _, b := range benchmarks(o) {
		r, err := b.run(ctx, e)
		if err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
		rep.results = append(rep.results, r)
	}
	if rep.rss, err = proxy.rss(); err != nil {
		return fmt.Errorf("proxy memory: %w", err)
	}
	rep.print(stdout)
	if o.strict && !rep.passed() {
		return errTargetsMissed
	}
	return nil
}

// dialKubeletLike connects the way kubelet's CRI client does.
func dialKubeletLike(socket string) (*grpc.ClientConn, error) {
	conn, err := grpc.NewClient("unix://"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("localhost"),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize)))
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", socket, err)
	}
	return conn, nil
}
