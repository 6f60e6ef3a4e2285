package forward_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
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
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/forward"
)

// bigList asks the fake runtime for a ListContainers answer of about 12 MB.
var bigList = &runtimeapi.ListContainersRequest{Filter: &runtimeapi.ContainerFilter{LabelSelector: map[string]string{
	"n": "3000", "size": "4096",
}}}

// TestRefusedAnswersDoNotWedge: a client with a 1 MiB limit refuses 50
// answers of 12 MB in a row; its connection still serves small calls at
// once.
func TestRefusedAnswersDoNotWedge(t *testing.T) {
	e := newEnv(t, forward.Options{})
	conn := dial(t, e.dir+"/proxy.sock", grpc.MaxCallRecvMsgSize(1<<20))
	client := runtimeapi.NewRuntimeServiceClient(conn)
	ctx := testContext(t)
	for i := range 50 {
		_, err := client.ListContainers(ctx, bigList)
		if status.Code(err) != codes.ResourceExhausted {
			t.Fatalf("list %d: %v, want ResourceExhausted", i, err)
		}
	}
	vctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if _, err := client.Version(vctx, &runtimeapi.VersionRequest{}); err != nil {
		t.Fatalf("Version after the refused lists: %v", err)
	}
}

// TestCancelReachesRuntime: a client's cancel ends the runtime's handler,
// for a unary call, forwarded or intercepted, and for a server stream
// whose client has half-closed.
func TestCancelReachesRuntime(t *testing.T) {
	unary := func(t *testing.T, o forward.Options) {
		e := newEnv(t, o)
		ctx, cancel := context.WithCancel(testContext(t))
		errc := make(chan error, 1)
		go func() {
			_, err := e.client.ExecSync(metadata.AppendToOutgoingContext(ctx, "block", "true"), &runtimeapi.ExecSyncRequest{})
			errc <- err
		}()
		waitClosed(t, e.runtime.blocked, "the runtime's call to start")
		cancel()
		waitClosed(t, e.runtime.ended, "the runtime's handler to see the cancel")
		if err := <-errc; status.Code(err) != codes.Canceled {
			t.Errorf("client got %v, want Canceled", err)
		}
	}
	t.Run("unary", func(t *testing.T) { unary(t, forward.Options{}) })
	t.Run("intercepted", func(t *testing.T) {
		unary(t, forward.Options{Intercept: map[string]forward.UnaryHandler{
			"/runtime.v1.RuntimeService/ExecSync": passThrough,
		}})
	})
	t.Run("stream", func(t *testing.T) {
		e := newEnv(t, forward.Options{})
		ctx, cancel := context.WithCancel(testContext(t))
		// The generated client sends the request and half-closes.
		s, err := e.client.GetContainerEvents(metadata.AppendToOutgoingContext(ctx, "block", "true"), &runtimeapi.GetEventsRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
		cancel()
		waitClosed(t, e.runtime.ended, "the runtime's handler to see the cancel")
		if _, err := s.Recv(); status.Code(err) != codes.Canceled {
			t.Errorf("after cancel: %v", err)
		}
		// The connection still serves.
		if _, err := e.client.Version(testContext(t), &runtimeapi.VersionRequest{}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestUnreadStreamDoesNotBlockOthers: a stream whose client does not read
// a 16 MiB answer does not delay other calls on the same connection.
func TestUnreadStreamDoesNotBlockOthers(t *testing.T) {
	e := newEnv(t, forward.Options{Intercept: map[string]forward.UnaryHandler{
		"/runtime.v1.RuntimeService/Status": passThrough,
	}})
	ctx, cancel := context.WithCancel(testContext(t))
	defer cancel()
	s, err := e.client.GetContainerEvents(metadata.AppendToOutgoingContext(ctx, "big", "true"), &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	waitClosed(t, e.runtime.bigSent, "the runtime to send the big answer")
	for range 10 {
		cctx, ccancel := context.WithTimeout(ctx, time.Second)
		if _, err := e.client.Status(cctx, &runtimeapi.StatusRequest{}); err != nil {
			t.Fatalf("intercepted Status beside the unread stream: %v", err)
		}
		if _, err := e.client.Version(cctx, &runtimeapi.VersionRequest{}); err != nil {
			t.Fatalf("Version beside the unread stream: %v", err)
		}
		ccancel()
	}
	// The big answer is still whole once read.
	ev, err := s.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(ev.GetContainerId()); n != 16<<20-1024 {
		t.Errorf("big event of %d bytes", n)
	}
}

// TestShutdown: an intercepted call in flight finishes when Shutdown has
// the time; when it has not, Shutdown still waits for the handler, which
// sees its context end, to return.
func TestShutdown(t *testing.T) {
	t.Run("graceful", func(t *testing.T) {
		started, release := make(chan struct{}), make(chan struct{})
		e := newEnv(t, forward.Options{Intercept: map[string]forward.UnaryHandler{
			"/runtime.v1.RuntimeService/RunPodSandbox": func(ctx context.Context, req []byte, next func(context.Context, []byte) ([]byte, error)) ([]byte, error) {
				close(started)
				<-release
				return next(ctx, req) // the runtime is still there
			},
		}})
		ctx := testContext(t)
		errc := make(chan error, 1)
		go func() {
			resp, err := e.client.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{RuntimeHandler: "h"})
			if err == nil && resp.GetPodSandboxId() != "h" {
				err = fmt.Errorf("answer %v", resp)
			}
			errc <- err
		}()
		waitClosed(t, started, "the handler to start")
		shutdown := make(chan struct{})
		go func() {
			e.proxy.Shutdown(ctx)
			close(shutdown)
		}()
		waitGoAway(t, e)
		close(release)
		if err := <-errc; err != nil {
			t.Errorf("call in flight: %v", err)
		}
		waitClosed(t, shutdown, "Shutdown to return")
		if err := <-e.served; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	t.Run("deadline", func(t *testing.T) {
		started, cancelled, release := make(chan struct{}), make(chan struct{}), make(chan struct{})
		var returned atomic.Bool
		e := newEnv(t, forward.Options{Intercept: map[string]forward.UnaryHandler{
			"/runtime.v1.RuntimeService/RunPodSandbox": func(ctx context.Context, _ []byte, _ func(context.Context, []byte) ([]byte, error)) ([]byte, error) {
				close(started)
				<-ctx.Done()
				close(cancelled)
				<-release // a rollback
				returned.Store(true)
				return nil, ctx.Err()
			},
		}})
		errc := make(chan error, 1)
		callCtx := testContext(t)
		go func() {
			_, err := e.client.RunPodSandbox(callCtx, &runtimeapi.RunPodSandboxRequest{})
			errc <- err
		}()
		waitClosed(t, started, "the handler to start")
		ctx, cancel := context.WithCancel(context.Background())
		shutdown := make(chan struct{})
		go func() {
			e.proxy.Shutdown(ctx)
			close(shutdown)
		}()
		waitGoAway(t, e)
		cancel() // Shutdown's time is up
		waitClosed(t, cancelled, "the handler to be cancelled")
		select {
		case <-shutdown:
			t.Fatal("Shutdown returned before the handler")
		default:
		}
		close(release)
		waitClosed(t, shutdown, "Shutdown to return")
		if !returned.Load() {
			t.Error("Shutdown returned before the handler")
		}
		if err := <-errc; status.Code(err) != codes.Unavailable {
			t.Errorf("call cut off by Shutdown: %v, want Unavailable", err)
		}
	})
}

// waitGoAway waits for the client's connection to leave the ready state:
// the proxy told it to go away, Shutdown has begun.
func waitGoAway(t *testing.T, e *env) {
	t.Helper()
	ctx := testContext(t)
	for s := e.conn.GetState(); s == connectivity.Ready; s = e.conn.GetState() {
		if !e.conn.WaitForStateChange(ctx, s) {
			t.Fatal("the client's connection is still ready")
		}
	}
}

// TestObserve: Observe sees every call once, with its final code, before
// the client has its answer.
func TestObserve(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	e := newEnv(t, forward.Options{
		Intercept: map[string]forward.UnaryHandler{
			"/runtime.v1.RuntimeService/Status": passThrough,
			"/runtime.v1.RuntimeService/StopPodSandbox": func(context.Context, []byte, func(context.Context, []byte) ([]byte, error)) ([]byte, error) {
				return nil, status.Error(codes.FailedPrecondition, "no")
			},
			"/runtime.v1.RuntimeService/RunPodSandbox": func(context.Context, []byte, func(context.Context, []byte) ([]byte, error)) ([]byte, error) {
				return nil, errors.New("not a status")
			},
			"/runtime.v1.RuntimeService/RemovePodSandbox": passThrough,
		},
		Observe: func(method string, d time.Duration, code codes.Code) {
			if d <= 0 {
				t.Errorf("%s observed with duration %v", method, d)
			}
			mu.Lock()
			seen = append(seen, strings.TrimPrefix(method, "/runtime.v1.RuntimeService/")+" "+code.String())
			mu.Unlock()
		},
	})
	ctx := testContext(t)
	e.client.Version(ctx, &runtimeapi.VersionRequest{})
	e.client.Version(ctx, &runtimeapi.VersionRequest{})
	e.client.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	e.client.ListMetricDescriptors(ctx, &runtimeapi.ListMetricDescriptorsRequest{})
	e.conn.Invoke(ctx, "/test.v1.Nothing/Here", &runtimeapi.VersionRequest{}, &runtimeapi.VersionResponse{})
	s, err := e.client.GetContainerEvents(ctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for err == nil {
		_, err = s.Recv()
	}
	e.client.Status(ctx, &runtimeapi.StatusRequest{})
	e.client.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{})
	e.client.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{})
	e.client.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{})

	want := []string{
		"/test.v1.Nothing/Here Unimplemented",
		"GetContainerEvents Aborted",
		"ListMetricDescriptors Unimplemented",
		"ListPodSandbox FailedPrecondition",
		"RemovePodSandbox FailedPrecondition",
		"RunPodSandbox Unknown",
		"Status OK",
		"StopPodSandbox FailedPrecondition",
		"Version OK",
		"Version OK",
	}
	mu.Lock()
	got := slices.Sorted(slices.Values(seen))
	mu.Unlock()
	if !slices.Equal(got, want) {
		t.Errorf("observed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
