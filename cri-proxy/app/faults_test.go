package app

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/cniexec"
	"sigs.k8s.io/pod-networks/internal/poll"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// sandboxRuntime is a CRI server that makes sandboxes: enough for the
// proxy's RunPodSandbox path and its rollback.
type sandboxRuntime struct {
	fakeRuntime
	mu    sync.Mutex
	calls []string
}

func (r *sandboxRuntime) record(c string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, c)
}

func (r *sandboxRuntime) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func (r *sandboxRuntime) RunPodSandbox(context.Context, *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	r.record("run sb1")
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: "sb1"}, nil
}

func (r *sandboxRuntime) PodSandboxStatus(_ context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	return &runtimeapi.PodSandboxStatusResponse{
		Status: &runtimeapi.PodSandboxStatus{Id: req.PodSandboxId, State: runtimeapi.PodSandboxState_SANDBOX_READY},
		Info:   map[string]string{"info": `{"runtimeSpec":{"linux":{"namespaces":[{"type":"network","path":"/var/run/netns/fake-sb1"}]}}}`},
	}, nil
}

func (r *sandboxRuntime) StopPodSandbox(_ context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	r.record("stop " + req.PodSandboxId)
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (r *sandboxRuntime) RemovePodSandbox(_ context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	r.record("remove " + req.PodSandboxId)
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

// slowPlugin is a CNI plugin whose ADD announces itself and waits for
// $DIR/release; DEL leaves $DIR/del.
const slowPlugin = `#!/bin/sh
case "$CNI_COMMAND" in
ADD) touch "$DIR/add-started"; while [ ! -e "$DIR/release" ]; do sleep 0.02; done
  echo '{"cniVersion": "1.0.0", "interfaces": [{"name": "'$CNI_IFNAME'", "sandbox": "'$CNI_NETNS'"}], "ips": [{"address": "10.9.0.2/24", "interface": 0}]}' ;;
DEL) touch "$DIR/del" ;;
VERSION) echo '{"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0"]}' ;;
esac
`

// daemon is a proxy under test, run by Run in this process.
type daemon struct {
	dir, sock string
	rt        *sandboxRuntime
	cancel    context.CancelFunc
	done      chan error
	client    runtimeapi.RuntimeServiceClient
}

func startDaemon(t *testing.T, extra ...string) *daemon {
	t.Helper()
	d := &daemon{dir: t.TempDir(), rt: &sandboxRuntime{}, done: make(chan error, 1)}
	upstream := filepath.Join(d.dir, "runtime.sock")
	ul, err := net.Listen("unix", upstream)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(gs, d.rt)
	go gs.Serve(ul)
	t.Cleanup(gs.Stop)
	nets, bin := filepath.Join(d.dir, "networks"), filepath.Join(d.dir, "bin")
	for _, dir := range []string{nets, bin} {
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(bin, "slow"), []byte(slowPlugin), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(nets, "blue.conflist"), []byte(`{"cniVersion": "1.0.0", "name": "blue", "plugins": [{"type": "slow"}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DIR", d.dir) // the plugin's environment comes from the proxy's
	d.sock = filepath.Join(d.dir, "proxy.sock")
	ctx, cancel := context.WithCancel(context.Background())
	d.cancel = cancel
	args := append([]string{"-listen=" + d.sock, "-upstream=" + upstream, "-networks-dir=" + nets, "-cni-bin-dir=" + bin,
		"-state-dir=" + filepath.Join(d.dir, "state"), "-metrics-address=", "-runtime-cni-conf-dir="}, extra...)
	go func() { d.done <- Run(ctx, args, os.Stderr) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-d.done:
		case <-time.After(30 * time.Second):
			t.Error("Run did not return")
		}
	})
	conn, err := grpc.NewClient("unix://"+d.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	d.client = runtimeapi.NewRuntimeServiceClient(conn)
	waitUntil(t, exists(d.sock))
	return d
}

func (d *daemon) runPodSandbox(ctx context.Context) (*runtimeapi.RunPodSandboxResponse, error) {
	return d.client.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: &runtimeapi.PodSandboxConfig{
		Metadata:    &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "team", Uid: "uid-1"},
		Annotations: map[string]string{netrequest.AnnotationKey: "blue"},
	}}, grpc.WaitForReady(true))
}

func (d *daemon) exists(name string) bool {
	_, err := os.Stat(filepath.Join(d.dir, name))
	return err == nil
}

// SIGTERM lets a RunPodSandbox in flight finish and reach kubelet.
func TestShutdownDrainsCallsInFlight(t *testing.T) {
	d := startDaemon(t, "-shutdown-grace=20s")
	type result struct {
		resp *runtimeapi.RunPodSandboxResponse
		err  error
	}
	res := make(chan result, 1)
	go func() {
		resp, err := d.runPodSandbox(context.Background())
		res <- result{resp, err}
	}()
	waitUntil(t, exists(filepath.Join(d.dir, "add-started")))
	d.cancel() // SIGTERM
	// Had Run stopped serving, the call would fail instead of finishing.
	if err := os.WriteFile(filepath.Join(d.dir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := <-res
	if r.err != nil || r.resp.GetPodSandboxId() != "sb1" {
		t.Fatalf("RunPodSandbox during shutdown = %v, %v; want it to finish", r.resp, r.err)
	}
	if err := <-d.done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	d.done <- nil // for the cleanup
}

// Past the grace, calls in flight are cancelled, and Run returns only after
// their rollback: no ADD left behind, the sandbox stopped and removed.
func TestShutdownRollsBackBeforeExit(t *testing.T) {
	d := startDaemon(t, "-shutdown-grace=200ms")
	res := make(chan error, 1)
	go func() {
		_, err := d.runPodSandbox(context.Background())
		res <- err
	}()
	waitUntil(t, exists(filepath.Join(d.dir, "add-started")))
	d.cancel()
	if err := <-d.done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	d.done <- nil
	// What Run finished before returning:
	if !d.exists("del") {
		t.Error("the cancelled ADD was not deleted before exit")
	}
	if got, want := d.rt.Calls(), []string{"run sb1", "stop sb1", "remove sb1"}; !slices.Equal(got, want) {
		t.Errorf("runtime calls = %v, want %v", got, want)
	}
	if records, _ := filepath.Glob(filepath.Join(d.dir, "state", "*.json")); len(records) > 0 {
		t.Errorf("records left: %v", records)
	}
	if intents, _ := filepath.Glob(filepath.Join(d.dir, "state", "intents", "*")); len(intents) > 0 {
		t.Errorf("intents left: %v", intents)
	}
	if err := <-res; err == nil {
		t.Error("the cancelled RunPodSandbox succeeded")
	}
}

// Plugins a killed proxy left running are killed before the new one starts
// deleting: they are marked with the instance of the state dir.
func TestRunKillsOrphanedPlugins(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	instance, err := instanceID(state)
	if err != nil {
		t.Fatal(err)
	}
	orphan := exec.Command("sleep", "60")
	orphan.Env = []string{cniexec.InstanceEnv + "=" + instance}
	orphan.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := orphan.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = orphan.Wait(); close(exited) }()
	t.Cleanup(func() { _ = orphan.Process.Kill() })
	waitUntil(t, func(context.Context) error {
		env, _ := os.ReadFile(fmt.Sprintf("/proc/%d/environ", orphan.Process.Pid))
		if !slices.Contains(splitNUL(env), cniexec.InstanceEnv+"="+instance) {
			return fmt.Errorf("the orphan (pid %d) has no instance marker yet", orphan.Process.Pid)
		}
		return nil
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"-listen=" + filepath.Join(dir, "p.sock"), "-upstream=" + filepath.Join(dir, "none.sock"),
			"-networks-dir=" + dir, "-cni-bin-dir=" + dir, "-state-dir=" + state, "-metrics-address=", "-runtime-cni-conf-dir="}, os.Stderr)
	}()
	select {
	case <-exited:
	case err := <-done:
		t.Fatalf("Run = %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the orphaned plugin still runs")
	}
	waitUntil(t, exists(filepath.Join(dir, "p.sock"))) // serving
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func splitNUL(b []byte) []string {
	var out []string
	for len(b) > 0 {
		i := slices.Index(b, 0)
		if i < 0 {
			i = len(b)
		}
		out = append(out, string(b[:i]))
		b = b[min(i+1, len(b)):]
	}
	return out
}

// waitUntil polls cond, failing the test if it is not done within 10 s.
func waitUntil(t *testing.T, cond poll.Condition) {
	t.Helper()
	if err := poll.Until(t.Context(), 10*time.Millisecond, 10*time.Second, cond); err != nil {
		t.Fatal(err)
	}
}

// exists is done once path exists.
func exists(path string) poll.Condition {
	return func(context.Context) error {
		_, err := os.Stat(path)
		return err
	}
}
