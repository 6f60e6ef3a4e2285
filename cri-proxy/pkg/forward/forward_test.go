package forward_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
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
	_, err := e.client.Version(ctx, &runtimeapi.VersionRequest{})
	wantStatus(t, err, codes.Unavailable, "")
	_, err = e.client.Status(ctx, &runtimeapi.StatusRequest{})
	wantStatus(t, err, codes.Unavailable, "")
	// Observe runs after the reply reaches the client: wait for it.
	for deadline := time.Now().Add(2 * time.Second); observed.Load() < 2 && time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
	}
	if observed.Load() < 2 {
		t.Errorf("observed %d Unavailable calls, want 2", observed.Load())
	}

	// Once the runtime is up, calls go through.
	startRuntime(t, upstream)
	waitVersion(t, e)
}

// waitVersion waits until Version goes through.
func waitVersion(t *testing.T, e *env) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := e.client.Version(testContext(t), &runtimeapi.VersionRequest{})
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

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

	startRuntime(t, filepath.Join(e.dir, "runtime.sock"))
	waitVersion(t, e)
	if _, err := e.client.Status(ctx, &runtimeapi.StatusRequest{}); err != nil {
		t.Fatal(err)
	}
}

func TestObserve(t *testing.T) {
	var mu sync.Mutex
	seen := map[string]codes.Code{}
	e := newEnv(t, forward.Options{
		Intercept: map[string]forward.UnaryHandler{"/runtime.v1.RuntimeService/Status": passThrough},
		Observe: func(method string, _ time.Duration, code codes.Code) {
			mu.Lock()
			seen[method] = code
			mu.Unlock()
		},
	})
	ctx := testContext(t)
	e.client.Version(ctx, &runtimeapi.VersionRequest{})
	e.client.Status(ctx, &runtimeapi.StatusRequest{})
	e.client.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	want := map[string]codes.Code{
		"/runtime.v1.RuntimeService/Version":        codes.OK,
		"/runtime.v1.RuntimeService/Status":         codes.OK,
		"/runtime.v1.RuntimeService/ListPodSandbox": codes.FailedPrecondition,
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		ok := fmt.Sprint(seen) == fmt.Sprint(want)
		got := fmt.Sprint(seen)
		mu.Unlock()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("observed %s, want %v", got, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
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
	select {
	case err := <-e.served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after Stop")
	}
}

func TestClientCancel(t *testing.T) {
	e := newEnv(t, forward.Options{})
	ctx, cancel := context.WithCancel(testContext(t))
	s, err := e.client.GetContainerEvents(metadata.AppendToOutgoingContext(ctx, "block", "true"), &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Recv(); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := s.Recv(); status.Code(err) != codes.Canceled {
		t.Errorf("after cancel: %v", err)
	}
	// The connection still serves.
	if _, err := e.client.Version(testContext(t), &runtimeapi.VersionRequest{}); err != nil {
		t.Fatal(err)
	}
}
