package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"google.golang.org/grpc/codes"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/forward"
)

// interceptedMethods are the methods the real daemon intercepts; the
// benchmark's proxy intercepts the same ones with pass-through handlers,
// which costs what the real Status handler costs on a non-verbose call to
// within an append.
var interceptedMethods = []string{
	"/runtime.v1.RuntimeService/RunPodSandbox",
	"/runtime.v1.RuntimeService/StopPodSandbox",
	"/runtime.v1.RuntimeService/RemovePodSandbox",
	"/runtime.v1.RuntimeService/Status",
	"/runtime.v1.RuntimeService/PodSandboxStatus",
}

func passThrough(ctx context.Context, req []byte, next func(context.Context, []byte) ([]byte, error)) ([]byte, error) {
	return next(ctx, req)
}

// runProxy is the "proxy" role: package forward between -listen and
// -upstream until it is signalled.
func runProxy(args []string) error {
	fs := flag.NewFlagSet("proxy", flag.ContinueOnError)
	listen := fs.String("listen", "", "unix socket to serve on")
	upstream := fs.String("upstream", "", "the runtime's unix socket")
	if err := fs.Parse(args); err != nil {
		return err
	}
	intercept := map[string]forward.UnaryHandler{}
	for _, m := range interceptedMethods {
		intercept[m] = passThrough
	}
	var calls atomic.Int64 // stands in for the daemon's metrics
	p, err := forward.New(forward.Options{
		Upstream:  *upstream,
		Intercept: intercept,
		Observe:   func(string, time.Duration, codes.Code) { calls.Add(1) },
	})
	if err != nil {
		return err
	}
	l, err := net.Listen("unix", *listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		p.Stop()
	}()
	return p.Serve(l)
}
