package forward_test

import (
	"bytes"
	"errors"
	"io"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/forward"
)

// outcome is what a grpc-go client sees of a call.
type outcome struct {
	header, trailer metadata.MD
	answers         [][]byte
	err             error
	status          []byte // status.Proto(err), marshalled
}

func marshalStatus(t *testing.T, err error) []byte {
	t.Helper()
	b, merr := proto.MarshalOptions{Deterministic: true}.Marshal(status.Convert(err).Proto())
	if merr != nil {
		t.Fatal(merr)
	}
	return b
}

// transparencyCase is a call, unary or server streaming.
type transparencyCase struct {
	name, method string
	stream       bool
	req          proto.Message
	md           []string
	sendLimit    int // the client's send limit when not kubelet's
	wantCode     codes.Code
}

var transparencyCases = []transparencyCase{
	{name: "success with headers, binary headers and trailers", method: "/runtime.v1.RuntimeService/Version",
		req: &runtimeapi.VersionRequest{Version: "v"}, md: []string{"x-echo", "e", "x-other-bin", "\x00\xff"}},
	{name: "error with headers, details and trailers", method: "/runtime.v1.RuntimeService/ContainerStatus",
		req: &runtimeapi.ContainerStatusRequest{}, wantCode: codes.FailedPrecondition},
	{name: "trailers-only error with details and a trailer", method: "/runtime.v1.RuntimeService/RemovePodSandbox",
		req: &runtimeapi.RemovePodSandboxRequest{}, wantCode: codes.FailedPrecondition},
	{name: "trailers-only error with details", method: "/runtime.v1.RuntimeService/ListPodSandbox",
		req: &runtimeapi.ListPodSandboxRequest{}, wantCode: codes.FailedPrecondition},
	{name: "the runtime's Unimplemented method", method: "/runtime.v1.RuntimeService/ListMetricDescriptors",
		req: &runtimeapi.ListMetricDescriptorsRequest{}, wantCode: codes.Unimplemented},
	{name: "the runtime's Unimplemented service", method: "/test.v1.Nothing/Here",
		req: &runtimeapi.VersionRequest{}, wantCode: codes.Unimplemented},
	{name: "unknown unary method", method: "/test.v1.Echo/Echo",
		req: &runtimeapi.VersionRequest{Version: "x"}},
	{name: "request above 16 MiB", method: "/runtime.v1.RuntimeService/RunPodSandbox",
		req: &runtimeapi.RunPodSandboxRequest{RuntimeHandler: strings.Repeat("h", 17<<20)}, sendLimit: 32 << 20, wantCode: codes.ResourceExhausted},
	{name: "server stream ending in an error", method: "/runtime.v1.RuntimeService/GetContainerEvents", stream: true,
		req: &runtimeapi.GetEventsRequest{}, wantCode: codes.Aborted},
	{name: "unknown server stream", method: "/test.v1.Echo/Repeat", stream: true,
		req: &runtimeapi.VersionRequest{Version: "r"}},
	{name: "the runtime's Unimplemented stream", method: "/test.v1.Nothing/Stream", stream: true,
		req: &runtimeapi.VersionRequest{}, wantCode: codes.Unimplemented},
}

// run makes the call on conn and returns what the client saw.
func (c transparencyCase) run(t *testing.T, conn *grpc.ClientConn) outcome {
	t.Helper()
	ctx := metadata.AppendToOutgoingContext(testContext(t), c.md...)
	var o outcome
	var opts []grpc.CallOption
	if c.sendLimit > 0 {
		opts = append(opts, grpc.MaxCallSendMsgSize(c.sendLimit))
	}
	if !c.stream {
		var resp emptypb.Empty // the answer's fields are kept as unknown ones
		err := conn.Invoke(ctx, c.method, c.req, &resp, append(opts, grpc.Header(&o.header), grpc.Trailer(&o.trailer))...)
		if err == nil {
			o.answers = append(o.answers, resp.ProtoReflect().GetUnknown())
		}
		o.err, o.status = err, marshalStatus(t, err)
		return o
	}
	s, err := conn.NewStream(ctx, &grpc.StreamDesc{ServerStreams: true}, c.method, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SendMsg(c.req); err != nil {
		t.Fatal(err)
	}
	if err := s.CloseSend(); err != nil {
		t.Fatal(err)
	}
	o.header, _ = s.Header()
	for {
		var resp emptypb.Empty
		err := s.RecvMsg(&resp)
		if err != nil {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			o.err, o.status = err, marshalStatus(t, err)
			break
		}
		o.answers = append(o.answers, resp.ProtoReflect().GetUnknown())
	}
	o.trailer = s.Trailer()
	return o
}

// TestTransparency: what a grpc-go client sees of a call — status with its
// details, headers (binary ones too), trailers, trailers-only answers — is
// the same, byte for byte, directly and through the proxy, forwarded or
// intercepted by a handler that passes the call on.
func TestTransparency(t *testing.T) {
	intercepted := map[string]forward.UnaryHandler{}
	for _, c := range transparencyCases {
		if !c.stream {
			intercepted[c.method] = passThrough
		}
	}
	for _, mode := range []struct {
		name string
		o    forward.Options
	}{{"forwarded", forward.Options{}}, {"intercepted", forward.Options{Intercept: intercepted}}} {
		t.Run(mode.name, func(t *testing.T) {
			e := newEnv(t, mode.o)
			direct := dial(t, filepath.Join(e.dir, "runtime.sock"))
			for _, c := range transparencyCases {
				t.Run(c.name, func(t *testing.T) {
					want := c.run(t, direct)
					got := c.run(t, e.conn)
					if !reflect.DeepEqual(got.header, want.header) {
						t.Errorf("header %#v, want %#v", got.header, want.header)
					}
					if !reflect.DeepEqual(got.trailer, want.trailer) {
						t.Errorf("trailer %#v, want %#v", got.trailer, want.trailer)
					}
					if !bytes.Equal(got.status, want.status) {
						t.Errorf("status %v, want %v", got.err, want.err)
					}
					if !reflect.DeepEqual(got.answers, want.answers) {
						t.Errorf("answers %q, want %q", got.answers, want.answers)
					}
					if c.wantCode != status.Code(want.err) {
						t.Errorf("the fake runtime answered %v, want code %v", want.err, c.wantCode)
					}
				})
			}
		})
	}
}
