package forward_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"sigs.k8s.io/pod-networks/cri-proxy/bench/passthrough"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/forward"
)

// The benchmarks time kubelet's hot-path calls over unix sockets: directly
// to a fake runtime, through the proxy (intercepting what the daemon
// intercepts, with pass-through handlers), and through a plain grpc-go
// pass-through with default options (the baseline the proxy must not be
// slower than).
//
//	go test -run '^$' -bench BenchmarkForward -benchmem -count 6 ./cri-proxy/pkg/forward/

// benchRuntime answers with fixed lists shaped like kubelet's pods.
type benchRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	sandboxes  *runtimeapi.ListPodSandboxResponse
	containers *runtimeapi.ListContainersResponse
}

func (r *benchRuntime) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "containerd", RuntimeVersion: "v2.1.0", RuntimeApiVersion: "v1"}, nil
}

func (r *benchRuntime) Status(context.Context, *runtimeapi.StatusRequest) (*runtimeapi.StatusResponse, error) {
	return &runtimeapi.StatusResponse{Status: &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{
		{Type: "RuntimeReady", Status: true}, {Type: "NetworkReady", Status: true},
	}}}, nil
}

func (r *benchRuntime) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	return r.sandboxes, nil
}

func (r *benchRuntime) ListContainers(context.Context, *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	return r.containers, nil
}

// newBenchRuntime makes sandboxes pods and containers containers with
// kubelet's labels and annotations (a 1000-container list is about 1 MiB).
func newBenchRuntime(sandboxes, containers int) *benchRuntime {
	rng := rand.New(rand.NewPCG(1, 2))
	hex := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return fmt.Sprintf("%x", b)
	}
	r := &benchRuntime{sandboxes: &runtimeapi.ListPodSandboxResponse{}, containers: &runtimeapi.ListContainersResponse{}}
	created := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano()
	for i := range sandboxes {
		name, ns, uid := fmt.Sprintf("web-%s-%s", hex(5), hex(3)), "namespace-"+fmt.Sprint(i%6), hex(16)
		r.sandboxes.Items = append(r.sandboxes.Items, &runtimeapi.PodSandbox{
			Id:        hex(32),
			Metadata:  &runtimeapi.PodSandboxMetadata{Name: name, Uid: uid, Namespace: ns, Attempt: uint32(i % 2)},
			State:     runtimeapi.PodSandboxState_SANDBOX_READY,
			CreatedAt: created + int64(i),
			Labels: map[string]string{
				"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": ns, "io.kubernetes.pod.uid": uid,
				"app.kubernetes.io/name": "web", "app.kubernetes.io/part-of": "shop", "pod-template-hash": hex(5),
			},
			Annotations: map[string]string{
				"kubernetes.io/config.seen": time.Unix(0, created).Format(time.RFC3339Nano), "kubernetes.io/config.source": "api",
				"prometheus.io/scrape": "true", "prometheus.io/port": "9090",
			},
		})
	}
	for i := range containers {
		sb := r.sandboxes.Items[i%sandboxes]
		image := "sha256:" + hex(32)
		name := fmt.Sprintf("web-%d", i/sandboxes)
		r.containers.Containers = append(r.containers.Containers, &runtimeapi.Container{
			Id:           hex(32),
			PodSandboxId: sb.Id,
			Metadata:     &runtimeapi.ContainerMetadata{Name: name, Attempt: uint32(i % 3)},
			Image:        &runtimeapi.ImageSpec{Image: image, UserSpecifiedImage: "ghcr.io/example/checkout-service:v2.14.1"},
			ImageRef:     image,
			ImageId:      image,
			State:        runtimeapi.ContainerState_CONTAINER_RUNNING,
			CreatedAt:    created + int64(i),
			Labels: map[string]string{
				"io.kubernetes.container.name": name, "io.kubernetes.pod.name": sb.Metadata.Name,
				"io.kubernetes.pod.namespace": sb.Metadata.Namespace, "io.kubernetes.pod.uid": sb.Metadata.Uid,
			},
			Annotations: map[string]string{
				"io.kubernetes.container.hash":                     hex(4),
				"io.kubernetes.container.restartCount":             fmt.Sprint(i % 3),
				"io.kubernetes.container.terminationMessagePath":   "/dev/termination-log",
				"io.kubernetes.container.terminationMessagePolicy": "File",
				"io.kubernetes.pod.terminationGracePeriod":         "30",
				"io.kubernetes.container.ports":                    `[{"name":"http","containerPort":8080,"protocol":"TCP"},{"name":"metrics","containerPort":9090,"protocol":"TCP"}]`,
			},
		})
	}
	return r
}

// startBaseline serves on socket cribench's anchor (package passthrough):
// the grpc-go pass-through a user would write, with a raw codec and
// grpc-go's default options but 16 MiB messages.
func startBaseline(b *testing.B, socket, upstream string) {
	conn, err := passthrough.Dial(upstream)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	s := passthrough.NewServer(conn)
	l, err := net.Listen("unix", socket)
	if err != nil {
		b.Fatal(err)
	}
	go s.Serve(l)
	b.Cleanup(s.Stop)
}

func benchPassThrough(ctx context.Context, req []byte, next func(context.Context, []byte) ([]byte, error)) ([]byte, error) {
	return next(ctx, req)
}

// benchEnv is a fake runtime, the proxy and the baseline in front of it,
// and a kubelet-like client of each.
type benchEnv struct {
	paths   []string // direct, proxy, baseline
	clients []runtimeapi.RuntimeServiceClient
}

// newBenchEnv starts the paths to a fake runtime, one that encodes its
// answers or, with raw, one that sends them pre-encoded (for a client that
// does not decode them either: what is left is the transport's cost).
func newBenchEnv(b *testing.B, raw bool) *benchEnv {
	dir := socketDir(b)
	runtimeSock := filepath.Join(dir, "runtime.sock")
	l, err := net.Listen("unix", runtimeSock)
	if err != nil {
		b.Fatal(err)
	}
	var rs *grpc.Server
	if raw {
		rs = rawRuntime(newBenchRuntime(200, 1000))
	} else {
		rs = grpc.NewServer(grpc.MaxRecvMsgSize(maxMsg), grpc.MaxSendMsgSize(maxMsg))
		runtimeapi.RegisterRuntimeServiceServer(rs, newBenchRuntime(200, 1000))
	}
	go rs.Serve(l)
	b.Cleanup(rs.Stop)

	// The proxy intercepts what the daemon intercepts.
	intercept := map[string]forward.UnaryHandler{}
	for _, m := range []string{"RunPodSandbox", "StopPodSandbox", "RemovePodSandbox", "Status", "PodSandboxStatus", "CreateContainer"} {
		intercept["/runtime.v1.RuntimeService/"+m] = benchPassThrough
	}
	p, err := forward.New(forward.Options{Upstream: runtimeSock, Intercept: intercept, Observe: func(string, time.Duration, codes.Code) {}})
	if err != nil {
		b.Fatal(err)
	}
	pl, err := net.Listen("unix", filepath.Join(dir, "proxy.sock"))
	if err != nil {
		b.Fatal(err)
	}
	go p.Serve(pl)
	b.Cleanup(func() { p.Stop(); p.Close() })
	startBaseline(b, filepath.Join(dir, "baseline.sock"), runtimeSock)

	e := &benchEnv{paths: []string{"direct", "proxy", "baseline"}}
	for _, sock := range []string{"runtime.sock", "proxy.sock", "baseline.sock"} {
		// kubelet's CRI client: grpc-go's defaults but its 16 MiB limit.
		callOpts := []grpc.CallOption{grpc.MaxCallRecvMsgSize(maxMsg)}
		if raw {
			callOpts = append(callOpts, grpc.ForceCodecV2(bytesCodec{}))
		}
		conn, err := grpc.NewClient("unix://"+filepath.Join(dir, sock), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithAuthority("localhost"), grpc.WithDefaultCallOptions(callOpts...))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { conn.Close() })
		e.clients = append(e.clients, runtimeapi.NewRuntimeServiceClient(conn))
	}
	return e
}

type benchCall struct {
	name string
	call func(context.Context, runtimeapi.RuntimeServiceClient) error
}

var benchCalls = []benchCall{
	{"Version", func(ctx context.Context, c runtimeapi.RuntimeServiceClient) error {
		_, err := c.Version(ctx, &runtimeapi.VersionRequest{})
		return err
	}},
	{"Status", func(ctx context.Context, c runtimeapi.RuntimeServiceClient) error {
		_, err := c.Status(ctx, &runtimeapi.StatusRequest{})
		return err
	}},
	{"ListContainers1000", func(ctx context.Context, c runtimeapi.RuntimeServiceClient) error {
		_, err := c.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
		return err
	}},
	{"ListPodSandbox200", func(ctx context.Context, c runtimeapi.RuntimeServiceClient) error {
		_, err := c.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		return err
	}},
}

// callOnce makes one call as kubelet does, with a deadline.
func callOnce(b *testing.B, call func(context.Context, runtimeapi.RuntimeServiceClient) error, c runtimeapi.RuntimeServiceClient) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := call(ctx, c); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkForward times each call on the three paths in rounds, one call
// per path a round, the order rotating, so that machine noise hits all
// alike (as cribench does), and reports each path's median latency and the
// ratios of the medians. ns/op is a round's.
func BenchmarkForward(b *testing.B) {
	benchmarkPaired(b, newBenchEnv(b, false), benchCalls)
}

// BenchmarkForwardRaw is BenchmarkForward with a runtime that sends
// pre-encoded answers and clients that do not decode them: the lists'
// latency is then the transports', which the proxy doubles.
func BenchmarkForwardRaw(b *testing.B) {
	benchmarkPaired(b, newBenchEnv(b, true), benchCalls[2:])
}

func benchmarkPaired(b *testing.B, e *benchEnv, calls []benchCall) {
	for _, c := range calls {
		b.Run(c.name, func(b *testing.B) {
			for _, client := range e.clients { // warm up
				callOnce(b, c.call, client)
			}
			d := make([][]time.Duration, len(e.clients))
			round := 0
			for b.Loop() {
				for k := range e.clients {
					i := (round + k) % len(e.clients)
					start := time.Now()
					callOnce(b, c.call, e.clients[i])
					d[i] = append(d[i], time.Since(start))
				}
				round++
			}
			med := make([]float64, len(d))
			for i, di := range d {
				slices.Sort(di)
				med[i] = float64(di[len(di)/2].Nanoseconds()) / 1e3
				b.ReportMetric(med[i], e.paths[i]+"-µs")
			}
			b.ReportMetric(med[1]/med[2], "proxy/baseline")
			b.ReportMetric(med[1]/med[0], "proxy/direct")
		})
	}
}

// BenchmarkForwardPath times each path on its own, for its allocations
// (-benchmem): they include the fake runtime's and the client's.
func BenchmarkForwardPath(b *testing.B) {
	e := newBenchEnv(b, false)
	for _, c := range benchCalls {
		for i, client := range e.clients {
			b.Run(c.name+"/"+e.paths[i], func(b *testing.B) {
				for b.Loop() {
					callOnce(b, c.call, client)
				}
			})
		}
	}
}

// rawRuntime answers ListContainers and ListPodSandbox with r's lists,
// encoded once.
func rawRuntime(r *benchRuntime) *grpc.Server {
	containers, err := proto.Marshal(r.containers)
	if err != nil {
		panic(err)
	}
	sandboxes, err := proto.Marshal(r.sandboxes)
	if err != nil {
		panic(err)
	}
	return grpc.NewServer(grpc.ForceServerCodecV2(bytesCodec{}), grpc.MaxSendMsgSize(maxMsg),
		grpc.UnknownServiceHandler(func(_ any, ss grpc.ServerStream) error {
			var req rawBytes
			if err := ss.RecvMsg(&req); err != nil {
				return err
			}
			switch method, _ := grpc.MethodFromServerStream(ss); method {
			case "/runtime.v1.RuntimeService/ListContainers":
				return ss.SendMsg(&rawBytes{b: containers})
			case "/runtime.v1.RuntimeService/ListPodSandbox":
				return ss.SendMsg(&rawBytes{b: sandboxes})
			}
			return status.Error(codes.Unimplemented, "raw runtime")
		}))
}

// bytesCodec sends encoded messages as they are and receives them without
// decoding: on the client, into any proto message, which it leaves empty.
type bytesCodec struct{}

type rawBytes struct{ b []byte }

func (bytesCodec) Name() string { return "proto" }

func (bytesCodec) Marshal(v any) (mem.BufferSlice, error) {
	if r, ok := v.(*rawBytes); ok {
		return mem.BufferSlice{mem.SliceBuffer(r.b)}, nil
	}
	b, err := proto.Marshal(v.(proto.Message))
	return mem.BufferSlice{mem.SliceBuffer(b)}, err
}

func (bytesCodec) Unmarshal(mem.BufferSlice, any) error { return nil }
