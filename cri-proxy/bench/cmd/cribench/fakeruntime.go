package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// netnsAnnotation tells the fake runtime which network namespace (created
// by cribench) a sandbox has; containerd would create one itself.
const netnsAnnotation = "cribench.x-k8s.io/netns"

// fakeRuntime answers the calls kubelet makes most often with fixed,
// realistic data, the way containerd does: every answer is encoded anew.
// It also runs sandboxes the way the proxy needs: RunPodSandbox records
// one, verbose PodSandboxStatus gives its netns path where containerd puts
// it, ListPodSandbox lists it (so the proxy's reconciler keeps its
// attachments), Stop and Remove end it.
type fakeRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	f *fixtures

	mu      sync.Mutex
	running map[string]*runtimeapi.PodSandbox
	netns   map[string]string
}

func newFakeRuntime(f *fixtures) *fakeRuntime {
	return &fakeRuntime{f: f, running: map[string]*runtimeapi.PodSandbox{}, netns: map[string]string{}}
}

func (r *fakeRuntime) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "containerd", RuntimeVersion: "v2.1.0", RuntimeApiVersion: "v1"}, nil
}

func (r *fakeRuntime) Status(context.Context, *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	return &runtimeapi.StatusResponse{
		Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
			{Type: runtimeapi.RuntimeReady, Status: true},
			{Type: runtimeapi.NetworkReady, Status: true},
		}},
		RuntimeHandlers: []*runtimeapi.RuntimeHandler{{Name: "", Features: &runtimeapi.RuntimeHandlerFeatures{RecursiveReadOnlyMounts: true, UserNamespaces: true}}},
		// As containerd v2 answers; cri-proxy adds its capability beside it.
		Features: &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true},
	}, nil
}

func (r *fakeRuntime) ListContainers(context.Context, *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	return &runtimeapi.ListContainersResponse{Containers: r.f.containers}, nil
}

func (r *fakeRuntime) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.running) == 0 {
		return &runtimeapi.ListPodSandboxResponse{Items: r.f.sandboxes}, nil
	}
	items := append([]*runtimeapi.PodSandbox(nil), r.f.sandboxes...)
	for _, sb := range r.running {
		items = append(items, sb)
	}
	return &runtimeapi.ListPodSandboxResponse{Items: items}, nil
}

func (r *fakeRuntime) RunPodSandbox(_ context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	cfg := req.GetConfig()
	md := cfg.GetMetadata()
	netns := cfg.GetAnnotations()[netnsAnnotation]
	if md.GetUid() == "" || netns == "" {
		return nil, status.Errorf(codes.InvalidArgument, "fake runtime: needs metadata.uid and annotation %s", netnsAnnotation)
	}
	id := sandboxID(md)
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.running[id]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "sandbox %s exists", id)
	}
	r.running[id] = &runtimeapi.PodSandbox{Id: id, Metadata: md, State: runtimeapi.PodSandboxState_SANDBOX_READY,
		Labels: cfg.GetLabels(), Annotations: cfg.GetAnnotations()}
	r.netns[id] = netns
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: id}, nil
}

func (r *fakeRuntime) PodSandboxStatus(_ context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	sb, ok := r.running[req.GetPodSandboxId()]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "sandbox %s not found", req.GetPodSandboxId())
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: &runtimeapi.PodSandboxStatus{
		Id: sb.Id, Metadata: sb.Metadata, State: sb.State, Labels: sb.Labels, Annotations: sb.Annotations,
		Network: &runtimeapi.PodSandboxNetworkStatus{Ip: "10.244.0.10"},
	}}
	if req.GetVerbose() {
		resp.Info = map[string]string{"info": sandboxInfo(r.netns[sb.Id])}
	}
	return resp, nil
}

// sandboxID is the id the fake runtime gives a pod's sandbox.
func sandboxID(md *runtimeapi.PodSandboxMetadata) string {
	return fmt.Sprintf("%s-%d", md.GetUid(), md.GetAttempt())
}

// sandboxInfo is containerd's verbose info["info"], reduced to what the
// proxy reads: runtimeSpec.linux.namespaces.
func sandboxInfo(netns string) string {
	type ns struct {
		Type string `json:"type"`
		Path string `json:"path,omitempty"`
	}
	var v struct {
		RuntimeSpec struct {
			Linux struct {
				Namespaces []ns `json:"namespaces"`
			} `json:"linux"`
		} `json:"runtimeSpec"`
	}
	v.RuntimeSpec.Linux.Namespaces = []ns{{Type: "pid"}, {Type: "ipc"}, {Type: "uts"}, {Type: "network", Path: netns}}
	b, _ := json.Marshal(v)
	return string(b)
}

func (r *fakeRuntime) StopPodSandbox(_ context.Context, req *runtimeapi.StopPodSandboxRequest) (*runtimeapi.StopPodSandboxResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if sb, ok := r.running[req.GetPodSandboxId()]; ok {
		sb.State = runtimeapi.PodSandboxState_SANDBOX_NOTREADY
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (r *fakeRuntime) RemovePodSandbox(_ context.Context, req *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.running, req.GetPodSandboxId())
	delete(r.netns, req.GetPodSandboxId())
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

// runRuntime is the "runtime" role: the fake runtime serves on -socket until
// it is signalled.
func runRuntime(args []string) error {
	fs := flag.NewFlagSet("runtime", flag.ContinueOnError)
	socket := fs.String("socket", "", "unix socket to serve on")
	sandboxes := fs.Int("sandboxes", 200, "sandboxes ListPodSandbox returns")
	containers := fs.Int("containers", 1000, "containers ListContainers returns")
	if err := fs.Parse(args); err != nil {
		return err
	}
	l, err := net.Listen("unix", *socket)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s := grpc.NewServer(grpc.MaxRecvMsgSize(maxMsgSize), grpc.MaxSendMsgSize(maxMsgSize))
	runtimeapi.RegisterRuntimeServiceServer(s, newFakeRuntime(newFixtures(*sandboxes, *containers)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		s.Stop()
	}()
	return s.Serve(l)
}
