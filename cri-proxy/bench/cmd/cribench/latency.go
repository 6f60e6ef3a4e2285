package main

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// path is one way to reach the fake runtime: directly, or through a proxy.
type path struct {
	name   string
	client runtimeapi.RuntimeServiceClient
	// addsFields: the path adds unknown fields to answers (cri-proxy adds
	// the node's networks to Status), ignored when checking that it
	// answers like the runtime.
	addsFields bool
}

// rpc is a call kubelet makes periodically.
type rpc struct {
	name   string
	list   bool // a list call, whose answer is large
	rounds int
	call   func(context.Context, runtimeapi.RuntimeServiceClient) (proto.Message, error)
}

// kubeletRPCs are the measured calls, in report order.
func kubeletRPCs(o options) []rpc {
	return []rpc{
		{"Version", false, o.small, func(ctx context.Context, c runtimeapi.RuntimeServiceClient) (proto.Message, error) {
			return c.Version(ctx, &runtimeapi.VersionRequest{})
		}},
		{"Status", false, o.small, func(ctx context.Context, c runtimeapi.RuntimeServiceClient) (proto.Message, error) {
			return c.Status(ctx, &runtimeapi.StatusRequest{})
		}},
		{fmt.Sprintf("ListContainers (%d)", o.containers), true, o.lists, func(ctx context.Context, c runtimeapi.RuntimeServiceClient) (proto.Message, error) {
			return c.ListContainers(ctx, &runtimeapi.ListContainersRequest{})
		}},
		{fmt.Sprintf("ListPodSandbox (%d)", o.sandboxes), true, o.lists, func(ctx context.Context, c runtimeapi.RuntimeServiceClient) (proto.Message, error) {
			return c.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
		}},
	}
}

// samples are one rpc's latencies, samples[p][i] for paths[p] in round i.
type samples struct {
	rpc     string
	size    int // bytes of the runtime's answer
	samples [][]time.Duration
}

// measure checks that every path answers like the first (direct) one,
// then times r.rounds rounds of one call per path after warmup untimed
// rounds. Paths take turns being first (see rotation), so that noise and
// drift of the machine hit them alike.
func measure(ctx context.Context, paths []path, r rpc, warmup int) (samples, error) {
	ref, err := r.call(ctx, paths[0].client)
	if err != nil {
		return samples{}, fmt.Errorf("%s %s: %w", r.name, paths[0].name, err)
	}
	for _, p := range paths[1:] {
		got, err := r.call(ctx, p.client)
		if err != nil {
			return samples{}, fmt.Errorf("%s via %s: %w", r.name, p.name, err)
		}
		if p.addsFields {
			got = proto.Clone(got)
			clearUnknown(got.ProtoReflect())
		}
		if !proto.Equal(ref, got) {
			return samples{}, fmt.Errorf("%s via %s: the answer differs from the runtime's", r.name, p.name)
		}
	}
	s := samples{rpc: r.name, size: proto.Size(ref), samples: make([][]time.Duration, len(paths))}
	for i := range warmup + r.rounds {
		for _, p := range rotation(i, len(paths)) {
			start := time.Now()
			_, err := r.call(ctx, paths[p].client)
			d := time.Since(start)
			if err != nil {
				return samples{}, fmt.Errorf("%s via %s: %w", r.name, paths[p].name, err)
			}
			if i >= warmup {
				s.samples[p] = append(s.samples[p], d)
			}
		}
	}
	return s, nil
}

// checkErrorsRelayed checks that every proxy relays a runtime's error
// status (here Unimplemented, for a call the fake runtime lacks) and its
// message unchanged.
func checkErrorsRelayed(ctx context.Context, paths []path) error {
	var want *status.Status
	for i, p := range paths {
		_, err := p.client.ContainerStats(ctx, &runtimeapi.ContainerStatsRequest{ContainerId: "x"})
		st := status.Convert(err)
		if i == 0 {
			if st.Code() != codes.Unimplemented {
				return fmt.Errorf("ContainerStats direct: %v, want Unimplemented", err)
			}
			want = st
			continue
		}
		if st.Code() != want.Code() || st.Message() != want.Message() {
			return fmt.Errorf("ContainerStats via %s: %v, want the runtime's %v", p.name, err, want.Err())
		}
	}
	return nil
}

// clearUnknown drops the unknown fields of m and of every message in it:
// what cri-proxy adds to answers (StatusResponse field 5, RuntimeFeatures
// field 4) are fields the stock cri-api does not know.
func clearUnknown(m protoreflect.Message) {
	m.SetUnknown(nil)
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList() && fd.Message() != nil:
			for i := range v.List().Len() {
				clearUnknown(v.List().Get(i).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			v.Map().Range(func(_ protoreflect.MapKey, mv protoreflect.Value) bool {
				clearUnknown(mv.Message())
				return true
			})
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			clearUnknown(v.Message())
		}
		return true
	})
}
