package forward_test

import (
	"context"
	"fmt"
	"maps"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/forward"
)

const maxMsg = 16 << 20

// fakeRuntime is the runtime behind the proxy in tests. Methods it does not
// implement answer Unimplemented, as containerd does for unknown ones.
type fakeRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	blocked chan struct{} // closed when a blocking call started
	ended   chan struct{} // closed when a blocking call saw its context end
	bigSent chan struct{} // closed when GetContainerEvents sent its big event
}

// block waits for ctx to end, telling the test it started and saw the end.
func (f *fakeRuntime) block(ctx context.Context) error {
	close(f.blocked)
	<-ctx.Done()
	close(f.ended)
	return ctx.Err()
}

// ExecSync, with metadata block=true, blocks until the call ends.
func (f *fakeRuntime) ExecSync(ctx context.Context, req *runtimeapi.ExecSyncRequest) (*runtimeapi.ExecSyncResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	if len(md.Get("block")) > 0 {
		return nil, f.block(ctx)
	}
	return &runtimeapi.ExecSyncResponse{Stdout: []byte(req.GetContainerId())}, nil
}

// ReopenContainerLog answers the request headers it got as headers:
// x-content-type, x-user-agent, x-keys (the metadata keys, sorted), and
// x-timeout, what is left of its deadline.
func (f *fakeRuntime) ReopenContainerLog(ctx context.Context, _ *runtimeapi.ReopenContainerLogRequest) (*runtimeapi.ReopenContainerLogResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	keys := slices.Sorted(maps.Keys(md))
	var timeout time.Duration
	if d, ok := ctx.Deadline(); ok {
		timeout = time.Until(d)
	}
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-content-type", strings.Join(md.Get("content-type"), ","),
		"x-user-agent", strings.Join(md.Get("user-agent"), ","), "x-keys", strings.Join(keys, ","),
		"x-timeout", timeout.String()))
	return &runtimeapi.ReopenContainerLogResponse{}, nil
}

// ContainerStatus sends headers (a binary one too), then fails with
// details and a trailer.
func (f *fakeRuntime) ContainerStatus(ctx context.Context, _ *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-header", "status", "x-raw-bin", string([]byte{0xff, 0, 0x80})))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t1", "x-trailer", "t2", "x-t-bin", string([]byte{9, 8, 7})))
	return nil, errorWithDetails()
}

// Version echoes the request's x-echo metadata as header and trailer.
func (f *fakeRuntime) Version(ctx context.Context, req *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-header", strings.Join(md.Get("x-echo"), ","), "x-data-bin", string([]byte{0, 1, 2})))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "t"+strings.Join(md.Get("x-echo"), ",")))
	return &runtimeapi.VersionResponse{Version: req.GetVersion(), RuntimeName: "fake"}, nil
}

func (f *fakeRuntime) Status(ctx context.Context, _ *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-header", "status"))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "status"))
	return &runtimeapi.StatusResponse{Info: map[string]string{"runtime": "fake"}}, nil
}

// ListContainers answers with n containers of size bytes each, n and size
// taken from the request's label selector.
func (f *fakeRuntime) ListContainers(_ context.Context, req *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	var n, size int
	fmt.Sscan(req.GetFilter().GetLabelSelector()["n"], &n)
	fmt.Sscan(req.GetFilter().GetLabelSelector()["size"], &size)
	resp := &runtimeapi.ListContainersResponse{}
	for i := range n {
		resp.Containers = append(resp.Containers, &runtimeapi.Container{Id: fmt.Sprintf("c%d", i), ImageRef: strings.Repeat("x", size)})
	}
	return resp, nil
}

// ListPodSandbox fails with details.
func (f *fakeRuntime) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	return nil, errorWithDetails()
}

func errorWithDetails() error {
	st, err := status.New(codes.FailedPrecondition, "sandbox store not ready: 100% ¡busy!").WithDetails(&runtimeapi.VersionResponse{RuntimeName: "detail"})
	if err != nil {
		panic(err)
	}
	return st.Err()
}

// RunPodSandbox answers with the requested runtime handler as sandbox id.
func (f *fakeRuntime) RunPodSandbox(ctx context.Context, req *runtimeapi.RunPodSandboxRequest) (*runtimeapi.RunPodSandboxResponse, error) {
	_ = grpc.SetHeader(ctx, metadata.Pairs("x-header", "run"))
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "run"))
	return &runtimeapi.RunPodSandboxResponse{PodSandboxId: req.GetRuntimeHandler()}, nil
}

func (f *fakeRuntime) RemovePodSandbox(ctx context.Context, _ *runtimeapi.RemovePodSandboxRequest) (*runtimeapi.RemovePodSandboxResponse, error) {
	_ = grpc.SetTrailer(ctx, metadata.Pairs("x-trailer", "remove"))
	return nil, errorWithDetails()
}

// PodSandboxStatus answers with a verbose info of the requested size.
func (f *fakeRuntime) PodSandboxStatus(_ context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	var size int
	fmt.Sscan(req.GetPodSandboxId(), &size)
	return &runtimeapi.PodSandboxStatusResponse{Info: map[string]string{"big": strings.Repeat("y", size)}}, nil
}

// GetContainerEvents sends three events, then fails with Aborted; with
// metadata block=true it sends one and waits for the call to end; with
// metadata big=true it sends an event of almost 16 MiB and waits.
func (f *fakeRuntime) GetContainerEvents(_ *runtimeapi.GetEventsRequest, s runtimeapi.RuntimeService_GetContainerEventsServer) error {
	md, _ := metadata.FromIncomingContext(s.Context())
	if len(md.Get("big")) > 0 {
		if err := s.Send(&runtimeapi.ContainerEventResponse{ContainerId: strings.Repeat("b", maxMsg-1024)}); err != nil {
			return err
		}
		close(f.bigSent)
		<-s.Context().Done()
		return s.Context().Err()
	}
	if len(md.Get("block")) > 0 {
		if err := s.Send(&runtimeapi.ContainerEventResponse{ContainerId: "first"}); err != nil {
			return err
		}
		return f.block(s.Context())
	}
	for i := range 3 {
		if err := s.Send(&runtimeapi.ContainerEventResponse{ContainerId: fmt.Sprint(i)}); err != nil {
			return err
		}
	}
	return status.Error(codes.Aborted, "no more events")
}

// echoService is a service the proxy knows nothing of: /test.v1.Echo with
// a unary Echo and a server-streaming Repeat, on VersionRequest and
// VersionResponse messages.
var echoService = grpc.ServiceDesc{
	ServiceName: "test.v1.Echo",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Echo",
		Handler: func(_ any, ctx context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
			var req runtimeapi.VersionRequest
			if err := dec(&req); err != nil {
				return nil, err
			}
			return &runtimeapi.VersionResponse{Version: "echo:" + req.GetVersion()}, nil
		},
	}},
	Streams: []grpc.StreamDesc{{
		StreamName:    "Repeat",
		ServerStreams: true,
		Handler: func(_ any, s grpc.ServerStream) error {
			var req runtimeapi.VersionRequest
			if err := s.RecvMsg(&req); err != nil {
				return err
			}
			for i := range 3 {
				if err := s.SendMsg(&runtimeapi.VersionResponse{Version: fmt.Sprintf("%s-%d", req.GetVersion(), i)}); err != nil {
					return err
				}
			}
			return nil
		},
	}},
}

// env is a fake runtime, a proxy in front of it and a client of the proxy.
type env struct {
	dir     string
	runtime *fakeRuntime
	server  *grpc.Server // the runtime's
	proxy   *forward.Proxy
	served  chan error // Serve's result
	conn    *grpc.ClientConn
	client  runtimeapi.RuntimeServiceClient
}

func socketDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "forward")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// startRuntime serves the fake runtime on socket.
func startRuntime(t *testing.T, socket string) (*fakeRuntime, *grpc.Server) {
	t.Helper()
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(grpc.MaxRecvMsgSize(maxMsg), grpc.MaxSendMsgSize(maxMsg))
	f := &fakeRuntime{blocked: make(chan struct{}), ended: make(chan struct{}), bigSent: make(chan struct{})}
	runtimeapi.RegisterRuntimeServiceServer(s, f)
	s.RegisterService(&echoService, nil)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return f, s
}

// startProxy serves a proxy to upstream with intercept and returns a
// client of it.
func startProxy(t *testing.T, dir, upstream string, o forward.Options) *env {
	t.Helper()
	o.Upstream = upstream
	p, err := forward.New(o)
	if err != nil {
		t.Fatal(err)
	}
	socket := filepath.Join(dir, "proxy.sock")
	l, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{dir: dir, proxy: p, served: make(chan error, 1)}
	go func() { e.served <- p.Serve(l) }()
	t.Cleanup(func() { p.Close() })
	t.Cleanup(p.Stop)
	e.conn = dial(t, socket)
	e.client = runtimeapi.NewRuntimeServiceClient(e.conn)
	return e
}

// dial connects to a unix socket as kubelet does, with kubelet's 16 MiB
// limit unless opts say otherwise.
func dial(t *testing.T, socket string, opts ...grpc.CallOption) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient("unix://"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("localhost"),
		grpc.WithDefaultCallOptions(append([]grpc.CallOption{grpc.MaxCallRecvMsgSize(maxMsg), grpc.MaxCallSendMsgSize(maxMsg)}, opts...)...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// newEnv starts a fake runtime and a proxy in front of it.
func newEnv(t *testing.T, o forward.Options) *env {
	t.Helper()
	dir := socketDir(t)
	upstream := filepath.Join(dir, "runtime.sock")
	f, s := startRuntime(t, upstream)
	e := startProxy(t, dir, upstream, o)
	e.runtime, e.server = f, s
	return e
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// wantStatus fails unless err is a status with code and message.
func wantStatus(t *testing.T, err error, code codes.Code, msg string) *status.Status {
	t.Helper()
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("error %v is not a status", err)
	}
	if st.Code() != code || (msg != "" && st.Message() != msg) {
		t.Fatalf("status %v %q, want %v %q", st.Code(), st.Message(), code, msg)
	}
	return st
}

func wantDetails(t *testing.T, st *status.Status) {
	t.Helper()
	d := st.Details()
	if len(d) != 1 {
		t.Fatalf("details %v, want one", d)
	}
	if v, ok := d[0].(*runtimeapi.VersionResponse); !ok || v.GetRuntimeName() != "detail" {
		t.Fatalf("detail %#v, want the runtime's", d[0])
	}
}
