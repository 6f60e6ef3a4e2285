package app

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/crifields"
	"sigs.k8s.io/pod-networks/internal/poll"
)

func TestListenMode(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "proxy.sock")
	l, err := listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 || fi.Mode()&os.ModeSocket == 0 {
		t.Errorf("socket mode = %v, want a socket with 0660", fi.Mode())
	}
}

func TestListenReplacesStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "proxy.sock")
	// A socket file nobody serves: what a killed proxy leaves.
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Fatalf("stale socket not left behind: %v", err)
	}
	l, err := listen(path)
	if err != nil {
		t.Fatalf("listen over a stale socket: %v", err)
	}
	l.Close()
}

func TestListenRefusesLiveSocketAndOtherFiles(t *testing.T) {
	dir := t.TempDir()
	live := filepath.Join(dir, "live.sock")
	l, err := net.Listen("unix", live)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if _, err := listen(live); err == nil || !strings.Contains(err.Error(), "another process is serving it") {
		t.Errorf("listen on a live socket: %v, want a refusal", err)
	}
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, []byte("keep me"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := listen(file); err == nil || !strings.Contains(err.Error(), "is not a socket") {
		t.Errorf("listen on a regular file: %v, want a refusal", err)
	}
	if b, _ := os.ReadFile(file); string(b) != "keep me" {
		t.Errorf("regular file changed to %q", b)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-attach-concurrency=0"}, "-attach-concurrency: 0 is not positive"},
		{[]string{"-attach-concurrency=8", "-max-plugin-processes=4"}, "-max-plugin-processes: 4 is below -attach-concurrency (8)"},
		{[]string{"-shutdown-grace=0s"}, "must be positive"},
		{[]string{"-attach-timeout=0s"}, "must be positive"},
		{[]string{"-kubeconfig=/k"}, "needs both -kubeconfig and -node-name"},
		{[]string{"-listen="}, "-listen is required"},
		{[]string{"-cni-bin-dir=,"}, "-cni-bin-dir is required"},
		{[]string{"-no-such-flag"}, "not defined"},
	} {
		var stderr bytes.Buffer
		err := Run(context.Background(), tc.args, &stderr)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Run(%v) = %v, want an error containing %q", tc.args, err, tc.want)
		}
	}
}

// fakeRuntime is a CRI server that answers Version and Status.
type fakeRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
}

func (fakeRuntime) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{RuntimeName: "fake", RuntimeVersion: "1.0"}, nil
}

func (fakeRuntime) Status(context.Context, *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{}}, nil
}

func (fakeRuntime) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	return &runtimeapi.ListPodSandboxResponse{}, nil
}

// TestRunServes runs the daemon against a fake runtime: calls pass through,
// Status lists the networks of the networks dir, /healthz answers, and the
// socket is gone after shutdown.
func TestRunServes(t *testing.T) {
	dir := t.TempDir()
	upstream := filepath.Join(dir, "runtime.sock")
	ul, err := net.Listen("unix", upstream)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(gs, fakeRuntime{})
	go gs.Serve(ul)
	defer gs.Stop()

	nets, bin := filepath.Join(dir, "networks"), filepath.Join(dir, "bin")
	for _, d := range []string{nets, bin} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bin, "bridge"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := `{"cniVersion":"1.0.0","name":"%s","plugins":[{"type":"bridge"}]}`
	for _, n := range []string{"red", "blue"} {
		if err := os.WriteFile(filepath.Join(nets, n+".conflist"), []byte(fmt.Sprintf(conf, n)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(nets, "broken.conflist"), []byte("{"), 0o644); err != nil {
		t.Fatal(err)
	}
	ml, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	metricsAddr := ml.Addr().String()
	ml.Close()

	sock := filepath.Join(dir, "proxy.sock")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"-listen=" + sock, "-upstream=" + upstream, "-networks-dir=" + nets,
			"-cni-bin-dir=" + bin, "-state-dir=" + filepath.Join(dir, "state"), "-metrics-address=" + metricsAddr}, os.Stderr)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run = %v", err)
		}
		if _, err := os.Lstat(sock); !os.IsNotExist(err) {
			t.Errorf("socket left after shutdown: %v", err)
		}
	}()

	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := runtimeapi.NewRuntimeServiceClient(conn)
	err = poll.Until(ctx, 20*time.Millisecond, 10*time.Second, func(ctx context.Context) error {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		defer ccancel()
		resp, err := client.Status(cctx, &runtimeapi.StatusRequest{})
		if err != nil {
			return err
		}
		got, err := crifields.StatusNetworks(resp)
		if err != nil {
			return poll.Fatal(err)
		}
		if !slices.Equal(got, []string{"blue", "red"}) {
			return fmt.Errorf("status networks %v", got)
		}
		return nil
	})
	if err != nil {
		t.Fatalf("want Status networks [blue red], broken.conflist skipped: %v", err)
	}
	v, err := client.Version(ctx, &runtimeapi.VersionRequest{})
	if err != nil || v.RuntimeName != "fake" {
		t.Errorf("Version = %v, %v; want the runtime's own answer", v, err)
	}
	resp, err := http.Get("http://" + metricsAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz = %d, want 200", resp.StatusCode)
	}
}
