// Command grpcpassthrough is cribench's anchor: package passthrough, the
// transparent CRI pass-through a user would write with grpc-go instead of
// cri-proxy, serving until it is signalled.
//
//	grpcpassthrough -listen PATH -upstream PATH
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"

	"sigs.k8s.io/pod-networks/cri-proxy/bench/passthrough"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "grpcpassthrough: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "", "unix socket to serve on")
	upstream := flag.String("upstream", "", "the runtime's unix socket")
	flag.Parse()
	conn, err := passthrough.Dial(*upstream)
	if err != nil {
		return err
	}
	defer conn.Close()
	l, err := net.Listen("unix", *listen)
	if err != nil {
		return err
	}
	s := passthrough.NewServer(conn)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		s.Stop()
	}()
	return s.Serve(l)
}
