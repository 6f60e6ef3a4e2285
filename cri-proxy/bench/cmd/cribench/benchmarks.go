package main

import (
	"context"
	"fmt"
	"slices"
	"time"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// env is what benchmarks run against.
type env struct {
	opts    options
	direct  runtimeapi.RuntimeServiceClient // the fake runtime
	proxied runtimeapi.RuntimeServiceClient // the same, through the proxy
}

// benchmark produces one line of the report.
type benchmark struct {
	name string
	run  func(ctx context.Context, e *env) (result, error)
}

// benchmarks lists what is measured, in report order. A benchmark that
// compares something else than direct and proxied calls (say, sequential
// and parallel network attachment) is one more entry whose run fills
// result's baseline and measured its own way.
func benchmarks(o options) []benchmark {
	bs := []benchmark{
		{name: "Version", run: func(ctx context.Context, e *env) (result, error) {
			return compareCalls(ctx, e, "Version", o.small, addedAtMostBaseline, func(ctx context.Context, c runtimeapi.RuntimeServiceClient) (proto.Message, error) {
				return c.Version(ctx, &runtimeapi.VersionRequest{})
			})
		}},
		{name: "Status", run: func(ctx context.Context, e *env) (result, error) {
			return compareCalls(ctx, e, "Status (intercepted)", o.small, addedAtMostBaseline, func(ctx context.Context, c runtimeapi.RuntimeServiceClient) (proto.Message, error) {
				return c.Status(ctx, &runtimeapi.StatusRequest{})
			})
		}},
		{name: "ListContainers", run: func(ctx context.Context, e *env) (result, error) {
			return compareCalls(ctx, e, fmt.Sprintf("ListContainers (%d)", o.containers), o.lists, ratioAtMost(1.05), func(ctx context.Context, c runtimeapi.RuntimeServiceClient) (proto.Message, error) {
				return c.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
			})
		}},
		{name: "ListPodSandbox", run: func(ctx context.Context, e *env) (result, error) {
			return compareCalls(ctx, e, fmt.Sprintf("ListPodSandbox (%d)", o.sandboxes), o.lists, ratioAtMost(1.05), func(ctx context.Context, c runtimeapi.RuntimeServiceClient) (proto.Message, error) {
				return c.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
			})
		}},
	}
	if o.attach > 0 {
		bs = append(bs, benchmark{name: "attach", run: func(ctx context.Context, _ *env) (result, error) {
			return compareAttach(ctx, o)
		}})
	}
	return bs
}

// compareCalls times n direct and n proxied calls after a warm-up,
// alternating which goes first, and checks that both answer alike.
func compareCalls(ctx context.Context, e *env, name string, n int, t target, call func(context.Context, runtimeapi.RuntimeServiceClient) (proto.Message, error)) (result, error) {
	ref, err := call(ctx, e.direct)
	if err != nil {
		return result{}, fmt.Errorf("direct: %w", err)
	}
	got, err := call(ctx, e.proxied)
	if err != nil {
		return result{}, fmt.Errorf("proxied: %w", err)
	}
	if !proto.Equal(ref, got) {
		return result{}, fmt.Errorf("proxied answer differs from the direct one")
	}
	for range e.opts.warmup {
		if _, err := call(ctx, e.direct); err != nil {
			return result{}, fmt.Errorf("direct: %w", err)
		}
		if _, err := call(ctx, e.proxied); err != nil {
			return result{}, fmt.Errorf("proxied: %w", err)
		}
	}
	direct, proxied := make([]time.Duration, 0, n), make([]time.Duration, 0, n)
	timed := func(c runtimeapi.RuntimeServiceClient, into *[]time.Duration) error {
		start := time.Now()
		_, err := call(ctx, c)
		*into = append(*into, time.Since(start))
		return err
	}
	for i := range n {
		first, second := e.direct, e.proxied
		firstInto, secondInto := &direct, &proxied
		if i%2 == 1 {
			first, second, firstInto, secondInto = second, first, secondInto, firstInto
		}
		if err := timed(first, firstInto); err != nil {
			return result{}, err
		}
		if err := timed(second, secondInto); err != nil {
			return result{}, err
		}
	}
	ratios := make([]float64, n)
	for i := range n {
		ratios[i] = float64(proxied[i]) / float64(direct[i])
	}
	return result{
		name:     fmt.Sprintf("%s %s", name, sizeOf(ref)),
		baseline: median(direct),
		measured: median(proxied),
		paired:   median(ratios),
		target:   t,
	}, nil
}

func sizeOf(m proto.Message) string {
	n := proto.Size(m)
	if n < 1<<10 {
		return fmt.Sprintf("%d B", n)
	}
	return fmt.Sprintf("%.0f KiB", float64(n)/(1<<10))
}

func median[T time.Duration | float64](d []T) T {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}
