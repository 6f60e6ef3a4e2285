package app

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"k8s.io/client-go/metadata"
	"k8s.io/client-go/tools/clientcmd"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/attachment"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/catalog"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/cniexec"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/forward"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/intercept"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/metrics"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/publish"
)

// Main runs the daemon until SIGINT or SIGTERM and exits non-zero on error.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Run(ctx, os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "cri-proxy: %v\n", err)
		os.Exit(1)
	}
}

// Run parses args and serves until ctx ends; then it stops accepting, lets
// calls in flight finish for -shutdown-grace, and returns once every
// intercepted call has returned (rollbacks included).
func Run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("cri-proxy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o Options
	o.addFlags(fs)
	klog.InitFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := o.finish(); err != nil {
		return err
	}
	for _, d := range []string{o.StateDir, o.CNICacheDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	logger := klog.FromContext(ctx)

	// Plugins a killed proxy left running must be gone before this one
	// deletes anything: an ADD finishing after our DEL would leak.
	instance, err := instanceID(o.StateDir)
	if err != nil {
		return err
	}
	if killed, err := cniexec.KillOrphans(ctx, instance); err != nil {
		return err
	} else if len(killed) > 0 {
		logger.Info("killed plugin processes left by an earlier proxy", "pids", killed)
	}
	m := metrics.New()

	// One connection to containerd for kubelet's calls and the proxy's own
	// (16 MiB answers, quick reconnects).
	conn, err := forward.Dial(o.Upstream, forward.DefaultMaxMsgSize)
	if err != nil {
		return fmt.Errorf("upstream %s: %w", o.Upstream, err)
	}
	defer conn.Close()
	runtime := runtimeapi.NewRuntimeServiceClient(conn)

	plugins := cniexec.New(cniexec.Options{Env: cniexec.GOMAXPROCS(o.PluginGOMAXPROCS), MaxProcesses: o.MaxPluginProcs, Instance: instance})
	networks, err := catalog.New(catalog.Config{Dir: o.NetworksDir, RuntimeConfDir: o.RuntimeCNIConfDir, BinDirs: o.CNIBinDirs,
		ResyncInterval: o.ResyncInterval, Exec: plugins, Observer: m})
	if err != nil {
		return err
	}
	var pods intercept.Publisher
	if o.Kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig)
		if err != nil {
			return fmt.Errorf("kubeconfig: %w", err)
		}
		client, err := metadata.NewForConfig(cfg)
		if err != nil {
			return err
		}
		if o.NodeAnnotation {
			node := publish.NewNode(client, o.NodeName)
			networks.OnChange(node.Set)
			go node.Run(ctx)
		}
		p := publish.NewPodStatuses(client, o.DefaultNetwork, publish.PodOptions{})
		go p.Run(ctx)
		pods = p
	}
	networks.Start(ctx)
	mgr, err := attachment.NewManager(networks, attachment.Config{StateDir: o.StateDir, CacheDir: o.CNICacheDir, BinDirs: o.CNIBinDirs,
		Concurrency: o.AttachConcurrency, Timeout: o.AttachTimeout, Runtime: sandboxStopper{runtime}, Exec: plugins, Observer: m})
	if err != nil {
		return err
	}
	srv := intercept.New(attacher{mgr}, networks, runtime, pods)
	proxy, err := forward.New(forward.Options{Conn: conn, Intercept: srv.Handlers(), Observe: m.ObserveRPC})
	if err != nil {
		return err
	}
	l, err := listen(o.Listen)
	if err != nil {
		return err
	}
	defer os.Remove(o.Listen)
	if o.MetricsAddress != "" {
		ml, err := net.Listen("tcp", o.MetricsAddress)
		if err != nil {
			l.Close()
			return fmt.Errorf("metrics address: %w", err)
		}
		hs := &http.Server{Handler: m.Handler(func() error { return upstreamReady(ctx, runtime) }), ReadHeaderTimeout: 5 * time.Second}
		go func() { _ = hs.Serve(ml) }()
		defer hs.Close()
	}
	reconciled := make(chan struct{})
	go func() {
		defer close(reconciled)
		reconcileLoop(ctx, mgr, runtime, o.ReconcileInterval)
	}()

	errc := make(chan error, 1)
	go func() { errc <- proxy.Serve(l) }()
	logger.Info("serving", "socket", o.Listen, "upstream", o.Upstream, "networksDir", o.NetworksDir)
	select {
	case <-ctx.Done():
		logger.Info("shutting down: draining calls in flight", "grace", o.ShutdownGrace)
		sctx, scancel := context.WithTimeout(context.WithoutCancel(ctx), o.ShutdownGrace)
		defer scancel()
		proxy.Shutdown(sctx)
		<-errc
		<-reconciled
		return nil
	case err := <-errc:
		return err
	}
}

// instanceID names this proxy's plugin processes by its state dir: a
// restarted proxy with the same state dir finds what the old one left.
func instanceID(stateDir string) (string, error) {
	abs, err := filepath.Abs(stateDir)
	if err != nil {
		return "", fmt.Errorf("state dir: %w", err)
	}
	sum := sha256.Sum256([]byte(abs))
	return hex.EncodeToString(sum[:8]), nil
}

// upstreamReady is /healthz: the proxy serves and containerd answers.
func upstreamReady(ctx context.Context, runtime runtimeapi.RuntimeServiceClient) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	if _, err := runtime.Version(ctx, &runtimeapi.VersionRequest{}); err != nil {
		return fmt.Errorf("upstream: %w", err)
	}
	return nil
}
