package forward_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/forward"
)

func TestMetadataHeadersAndTrailers(t *testing.T) {
	e := newEnv(t, forward.Options{})
	ctx := metadata.AppendToOutgoingContext(testContext(t), "x-echo", "hello")
	var header, trailer metadata.MD
	resp, err := e.client.Version(ctx, &runtimeapi.VersionRequest{Version: "v1"}, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatal(err)
	}
	if resp.GetVersion() != "v1" || resp.GetRuntimeName() != "fake" {
		t.Errorf("response %v", resp)
	}
	if got := header.Get("x-header"); len(got) != 1 || got[0] != "hello" {
		t.Errorf("header x-header %q, want the request's metadata echoed", got)
	}
	if got := header.Get("x-data-bin"); len(got) != 1 || got[0] != string([]byte{0, 1, 2}) {
		t.Errorf("binary header %q", got)
	}
	if got := trailer.Get("x-trailer"); len(got) != 1 || got[0] != "thello" {
		t.Errorf("trailer x-trailer %q", got)
	}
}

// TestRequestHeaders: the runtime gets the client's metadata, less what
// grpc-go sets, its content-type and deadline, and the proxy's user-agent.
func TestRequestHeaders(t *testing.T) {
	for _, o := range []forward.Options{{}, {Intercept: map[string]forward.UnaryHandler{
		"/runtime.v1.RuntimeService/ReopenContainerLog": passThrough,
	}}} {
		e := newEnv(t, o)
		ctx, cancel := context.WithTimeout(testContext(t), 10*time.Second)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "x-one", "1", "x-two-bin", "\x00", "grpc-custom", "dropped")
		for _, subtype := range []string{"", "proto"} {
			var header metadata.MD
			opts := []grpc.CallOption{grpc.Header(&header)}
			want := "application/grpc"
			if subtype != "" {
				opts = append(opts, grpc.CallContentSubtype(subtype))
				want += "+" + subtype
			}
			if _, err := e.client.ReopenContainerLog(ctx, &runtimeapi.ReopenContainerLogRequest{}, opts...); err != nil {
				t.Fatal(err)
			}
			if got := header.Get("x-content-type"); len(got) != 1 || got[0] != want {
				t.Errorf("the runtime got content-type %q, want %q", got, want)
			}
			if got := header.Get("x-user-agent"); len(got) != 1 || !strings.HasPrefix(got[0], "cri-proxy grpc-go/") {
				t.Errorf("the runtime got user-agent %q, want the proxy's", got)
			}
			if got, want := header.Get("x-keys"), ":authority,content-type,user-agent,x-one,x-two-bin"; len(got) != 1 || got[0] != want {
				t.Errorf("the runtime got metadata keys %q, want %q", got, want)
			}
			if got := header.Get("x-timeout"); len(got) != 1 {
				t.Errorf("the runtime got no deadline")
			} else if d, err := time.ParseDuration(got[0]); err != nil || d <= 5*time.Second || d > 10*time.Second {
				t.Errorf("the runtime's deadline was %s away, want the client's 10s", got[0])
			}
		}
	}
}

func TestUnimplementedPassesThrough(t *testing.T) {
	e := newEnv(t, forward.Options{})
	_, err := e.client.ListMetricDescriptors(testContext(t), &runtimeapi.ListMetricDescriptorsRequest{})
	wantStatus(t, err, codes.Unimplemented, "method ListMetricDescriptors not implemented")
}

func TestErrorWithDetailsPassesThrough(t *testing.T) {
	e := newEnv(t, forward.Options{})
	_, err := e.client.ListPodSandbox(testContext(t), &runtimeapi.ListPodSandboxRequest{})
	wantDetails(t, wantStatus(t, err, codes.FailedPrecondition, "sandbox store not ready: 100% ¡busy!"))
}

func TestServerStreaming(t *testing.T) {
	e := newEnv(t, forward.Options{})
	s, err := e.client.GetContainerEvents(testContext(t), &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		ev, err := s.Recv()
		if err != nil {
			wantStatus(t, err, codes.Aborted, "no more events")
			break
		}
		got = append(got, ev.GetContainerId())
	}
	if strings.Join(got, ",") != "0,1,2" {
		t.Errorf("events %q, want 0,1,2", got)
	}
}

func TestUnknownMethods(t *testing.T) {
	e := newEnv(t, forward.Options{})
	ctx := testContext(t)
	var resp runtimeapi.VersionResponse
	if err := e.conn.Invoke(ctx, "/test.v1.Echo/Echo", &runtimeapi.VersionRequest{Version: "x"}, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.GetVersion() != "echo:x" {
		t.Errorf("unary unknown method answered %q", resp.GetVersion())
	}

	s, err := e.conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, "/test.v1.Echo/Repeat")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendMsg(&runtimeapi.VersionRequest{Version: "r"}); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for {
		var m runtimeapi.VersionResponse
		if err := s.RecvMsg(&m); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		got = append(got, m.GetVersion())
	}
	if strings.Join(got, ",") != "r-0,r-1,r-2" {
		t.Errorf("streaming unknown method answered %q", got)
	}

	err = e.conn.Invoke(ctx, "/test.v1.Nothing/Here", &runtimeapi.VersionRequest{}, &resp)
	wantStatus(t, err, codes.Unimplemented, "unknown service test.v1.Nothing")
}

func TestLargeMessages(t *testing.T) {
	e := newEnv(t, forward.Options{})
	// A 5 MiB request asking for a 12 MB response.
	req := &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: map[string]string{
		"n": "3000", "size": "4096", "padding": strings.Repeat("p", 5<<20),
	}}}
	for range 3 {
		resp, err := e.client.ListContainers(testContext(t), req)
		if err != nil {
			t.Fatal(err)
		}
		if n := proto.Size(resp); n < 12e6 || len(resp.GetContainers()) != 3000 {
			t.Fatalf("response of %d bytes, %d containers", n, len(resp.GetContainers()))
		}
	}
}

func TestConcurrentCalls(t *testing.T) {
	e := newEnv(t, forward.Options{Intercept: map[string]forward.UnaryHandler{
		"/runtime.v1.RuntimeService/Status": passThrough,
	}})
	ctx := testContext(t)
	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 40 {
		wg.Go(func() {
			for j := range 20 {
				var err error
				switch (i + j) % 4 {
				case 0:
					_, err = e.client.Version(ctx, &runtimeapi.VersionRequest{})
				case 1:
					_, err = e.client.Status(ctx, &runtimeapi.StatusRequest{})
				case 2:
					_, err = e.client.ListContainers(ctx, &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{
						LabelSelector: map[string]string{"n": "100", "size": "1000"}}})
				case 3:
					_, err = e.client.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: "70000"})
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func passThrough(ctx context.Context, req []byte, next func(context.Context, []byte) ([]byte, error)) ([]byte, error) {
	return next(ctx, req)
}

func TestInterceptedRawBytes(t *testing.T) {
	var mu sync.Mutex // the race detector sees no order through sockets
	var sawReq []byte
	var sawMD metadata.MD
	e := newEnv(t, forward.Options{Intercept: map[string]forward.UnaryHandler{
		"/runtime.v1.RuntimeService/RunPodSandbox": func(ctx context.Context, req []byte, next func(context.Context, []byte) ([]byte, error)) ([]byte, error) {
			mu.Lock()
			sawReq = bytes.Clone(req)
			sawMD, _ = metadata.FromIncomingContext(ctx)
			mu.Unlock()
			var r runtimeapi.RunPodSandboxRequest
			if err := proto.Unmarshal(req, &r); err != nil {
				return nil, err
			}
			r.RuntimeHandler = "changed-" + r.RuntimeHandler
			req, err := proto.Marshal(&r)
			if err != nil {
				return nil, err
			}
			resp, err := next(ctx, req)
			if err != nil {
				return nil, err
			}
			var out runtimeapi.RunPodSandboxResponse
			if err := proto.Unmarshal(resp, &out); err != nil {
				return nil, err
			}
			out.PodSandboxId += "-seen"
			return proto.Marshal(&out)
		},
	}})
	req := &runtimeapi.RunPodSandboxRequest{RuntimeHandler: "runc", Config: &runtimeapi.PodSandboxConfig{Hostname: "h"}}
	ctx := metadata.AppendToOutgoingContext(testContext(t), "x-call", "1")
	var header, trailer metadata.MD
	resp, err := e.client.RunPodSandbox(ctx, req, grpc.Header(&header), grpc.Trailer(&trailer))
	if err != nil {
		t.Fatal(err)
	}
	want, _ := proto.Marshal(req)
	mu.Lock()
	defer mu.Unlock()
	if !bytes.Equal(sawReq, want) {
		t.Errorf("handler saw request %x, want %x", sawReq, want)
	}
	if got := sawMD.Get("x-call"); len(got) != 1 || got[0] != "1" {
		t.Errorf("handler saw metadata %v", sawMD)
	}
	if resp.GetPodSandboxId() != "changed-runc-seen" {
		t.Errorf("sandbox id %q, want the modified request's, modified", resp.GetPodSandboxId())
	}
	if header.Get("x-header")[0] != "run" || trailer.Get("x-trailer")[0] != "run" {
		t.Errorf("header %v trailer %v, want the runtime's", header, trailer)
	}
}

func TestInterceptedErrors(t *testing.T) {
	e := newEnv(t, forward.Options{Intercept: map[string]forward.UnaryHandler{
		"/runtime.v1.RuntimeService/StopPodSandbox": func(context.Context, []byte, func(context.Context, []byte) ([]byte, error)) ([]byte, error) {
			return nil, status.Error(codes.FailedPrecondition, "network detach failed")
		},
		"/runtime.v1.RuntimeService/RemovePodSandbox": passThrough,
		"/runtime.v1.RuntimeService/ListImages":       passThrough, // not in the fake runtime
	}})
	ctx := testContext(t)
	_, err := e.client.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: "x"})
	wantStatus(t, err, codes.FailedPrecondition, "network detach failed")

	var trailer metadata.MD
	_, err = e.client.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: "x"}, grpc.Trailer(&trailer))
	wantDetails(t, wantStatus(t, err, codes.FailedPrecondition, "sandbox store not ready: 100% ¡busy!"))
	if got := trailer.Get("x-trailer"); len(got) != 1 || got[0] != "remove" {
		t.Errorf("trailer %v, want the runtime's", trailer)
	}

	images := runtimeapi.NewImageServiceClient(e.conn)
	_, err = images.ListImages(ctx, &runtimeapi.ListImagesRequest{})
	wantStatus(t, err, codes.Unimplemented, "unknown service runtime.v1.ImageService")
}

func TestInterceptedLargeMessages(t *testing.T) {
	e := newEnv(t, forward.Options{Intercept: map[string]forward.UnaryHandler{
		"/runtime.v1.RuntimeService/PodSandboxStatus": passThrough,
		"/runtime.v1.RuntimeService/RunPodSandbox":    passThrough,
	}})
	ctx := testContext(t)
	resp, err := e.client.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: fmt.Sprint(11 << 20)})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(resp.GetInfo()["big"]); n != 11<<20 {
		t.Errorf("info of %d bytes", n)
	}
	handler := strings.Repeat("h", 5<<20)
	run, err := e.client.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{RuntimeHandler: handler})
	if err != nil {
		t.Fatal(err)
	}
	if run.GetPodSandboxId() != handler {
		t.Errorf("large request did not arrive whole")
	}
}

func TestUpstreamDown(t *testing.T) {
	dir := socketDir(t)
	var observed atomic.Int32
	upstream := dir + "/runtime.sock"
	e := startProxy(t, dir, upstream, forward.Options{
		Intercept: map[string]forward.UnaryHandler{"/runtime.v1.RuntimeService/Status": passThrough},
		Observe: func(_ string, _ time.Duration, code codes.Code) {
			if code == codes.Unavailable {
				observed.Add(1)
			}
		},
	})
	ctx := testContext(t)
	start := time.Now()
	_, err := e.client.Version(ctx, &runtimeapi.VersionRequest{})
	wantStatus(t, err, codes.Unavailable, "")
	_, err = e.client.Status(ctx, &runtimeapi.StatusRequest{})
	wantStatus(t, err, codes.Unavailable, "")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("failing took %v: calls should fail fast", d)
	}
	// Observe runs before the status is sent.
	if n := observed.Load(); n != 2 {
		t.Errorf("observed %d Unavailable calls, want 2", n)
	}

	// Once the runtime is up, calls go through.
	startRuntime(t, upstream)
	waitRecovered(t, e, time.Now())
	if _, err := e.client.Status(ctx, &runtimeapi.StatusRequest{}); err != nil {
		t.Fatal(err)
	}
}

// waitRecovered waits for the proxy's runtime connection to be ready (no
// polling: connectivity state changes) and checks that calls go through
// within 2 s of the runtime listening at since.
func waitRecovered(t *testing.T, e *env, since time.Time) {
	t.Helper()
	ctx := testContext(t)
	conn := e.proxy.RuntimeConn()
	conn.Connect()
	for s := conn.GetState(); s != connectivity.Ready; s = conn.GetState() {
		if !conn.WaitForStateChange(ctx, s) {
			t.Fatalf("runtime connection still %v", s)
		}
	}
	if _, err := e.client.Version(ctx, &runtimeapi.VersionRequest{}); err != nil {
		t.Fatal(err)
	}
	d := time.Since(since)
	if d > 2*time.Second {
		t.Errorf("calls went through %v after the runtime listened, want within 2s", d)
	}
	t.Logf("calls go through %v after the runtime listened", d)
}

// TestRuntimeRestart: containerd restarts mid-stream. The call in flight
// fails Unavailable, later calls fail fast until the runtime is back, and
// go through within 2 s of it listening again.
func TestRuntimeRestart(t *testing.T) {
	e := newEnv(t, forward.Options{Intercept: map[string]forward.UnaryHandler{
		"/runtime.v1.RuntimeService/Status": passThrough,
	}})
	ctx := testContext(t)
	if _, err := e.client.Status(ctx, &runtimeapi.StatusRequest{}); err != nil {
		t.Fatal(err)
	}
	s, err := e.client.GetContainerEvents(metadata.AppendToOutgoingContext(ctx, "block", "true"), &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	e.server.Stop()
	if _, err := s.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("stream in flight when the runtime went: %v, want Unavailable", err)
	}
	_, err = e.client.Status(ctx, &runtimeapi.StatusRequest{})
	wantStatus(t, err, codes.Unavailable, "")
	_, err = e.client.Version(ctx, &runtimeapi.VersionRequest{})
	wantStatus(t, err, codes.Unavailable, "")

	start := time.Now()
	startRuntime(t, filepath.Join(e.dir, "runtime.sock"))
	waitRecovered(t, e, start)
	if _, err := e.client.Status(ctx, &runtimeapi.StatusRequest{}); err != nil {
		t.Fatal(err)
	}
	// The client kept its connection to the proxy throughout.
	if _, err := e.client.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{}); err != nil {
		t.Fatal(err)
	}
}

// TestRecoveryAfterLongOutage: after an outage long enough for the
// reconnect backoff to reach its maximum, calls still go through within
// 2 s of the runtime listening again. The outage is a socket that hangs up
// on every connection: each of the proxy's attempts is seen, and the test
// waits for enough of them instead of for some time.
func TestRecoveryAfterLongOutage(t *testing.T) {
	dir := socketDir(t)
	upstream := filepath.Join(dir, "runtime.sock")
	down, err := net.Listen("unix", upstream)
	if err != nil {
		t.Fatal(err)
	}
	attempts := make(chan struct{}, 100)
	go func() {
		for {
			c, err := down.Accept()
			if err != nil {
				return
			}
			c.Close()
			attempts <- struct{}{}
		}
	}()
	e := startProxy(t, dir, upstream, forward.Options{})
	_, err = e.client.Version(testContext(t), &runtimeapi.VersionRequest{})
	wantStatus(t, err, codes.Unavailable, "")
	// Backoffs of 0.1, 0.16, 0.26, 0.41, 0.66 then 1 s (±20%): the 7th
	// attempt comes after the longest.
	for i := range 7 {
		select {
		case <-attempts:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d connection attempts only", i)
		}
	}
	down.Close()
	start := time.Now()
	startRuntime(t, upstream)
	waitRecovered(t, e, start)
}

func TestStopEndsCallsInFlight(t *testing.T) {
	handlerStarted := make(chan struct{})
	e := newEnv(t, forward.Options{Intercept: map[string]forward.UnaryHandler{
		"/runtime.v1.RuntimeService/RunPodSandbox": func(ctx context.Context, _ []byte, _ func(context.Context, []byte) ([]byte, error)) ([]byte, error) {
			close(handlerStarted)
			<-ctx.Done()
			return nil, ctx.Err()
		},
	}})
	ctx := testContext(t)
	s, err := e.client.GetContainerEvents(metadata.AppendToOutgoingContext(ctx, "block", "true"), &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	<-e.runtime.blocked
	runErr := make(chan error, 1)
	go func() {
		_, err := e.client.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{})
		runErr <- err
	}()
	<-handlerStarted

	e.proxy.Stop()
	if _, err := s.Recv(); status.Code(err) != codes.Unavailable {
		t.Errorf("stream after Stop: %v, want Unavailable", err)
	}
	if err := <-runErr; status.Code(err) != codes.Unavailable {
		t.Errorf("intercepted call after Stop: %v, want Unavailable", err)
	}
	// The runtime's call was cancelled.
	waitClosed(t, e.runtime.ended, "the runtime's call to end")
	select {
	case err := <-e.served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-ctx.Done():
		t.Fatal("Serve did not return after Stop")
	}
}

// waitClosed waits for c to be closed, failing the test after 10 s.
func waitClosed(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(10 * time.Second):
		t.Fatalf("timed out waiting for %s", what)
	}
}
