// Package passthrough is the transparent CRI pass-through a user would
// write with grpc-go instead of cri-proxy, the anchor of the proxy's
// benchmarks (cribench's grpcpassthrough and package forward's Go
// benchmarks): a grpc.Server whose UnknownServiceHandler relays every call,
// unary or streaming, to the runtime over one grpc.ClientConn, with a raw
// codec that hands the received message buffers on without decoding or
// copying them, and metadata, headers and trailers passed along. Every gRPC
// option is grpc-go's default except the message size limits, raised to
// kubelet's 16 MiB so that large lists fit. It intercepts nothing.
package passthrough

import (
	"context"
	"errors"
	"fmt"
	"io"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// MaxMsgSize is kubelet's CRI message size limit.
const MaxMsgSize = 16 << 20

// Dial connects to the runtime's unix socket with grpc-go's defaults but
// MaxMsgSize messages.
func Dial(upstream string) (*grpc.ClientConn, error) {
	return grpc.NewClient("unix://"+upstream,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(MaxMsgSize), grpc.MaxCallSendMsgSize(MaxMsgSize)))
}

// NewServer returns the pass-through server relaying every call to conn.
func NewServer(conn *grpc.ClientConn) *grpc.Server {
	return grpc.NewServer(
		grpc.ForceServerCodecV2(rawCodec{}),
		grpc.UnknownServiceHandler(relay(conn)),
		grpc.MaxRecvMsgSize(MaxMsgSize), grpc.MaxSendMsgSize(MaxMsgSize))
}

// frame is one gRPC message, undecoded.
type frame struct{ data mem.BufferSlice }

// rawCodec moves frames: Unmarshal keeps a reference to the received
// buffers, Marshal hands them on (gRPC frees them once written).
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	f, ok := v.(*frame)
	if !ok {
		return nil, fmt.Errorf("rawCodec: cannot marshal %T", v)
	}
	return f.data, nil
}

func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	f, ok := v.(*frame)
	if !ok {
		return fmt.Errorf("rawCodec: cannot unmarshal into %T", v)
	}
	data.Ref()
	f.data = data
	return nil
}

var clientStreams = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

// relay forwards one call: requests downstream→upstream in a goroutine,
// then the upstream's header, responses and trailer back.
func relay(conn *grpc.ClientConn) grpc.StreamHandler {
	return func(_ any, in grpc.ServerStream) error {
		method, ok := grpc.MethodFromServerStream(in)
		if !ok {
			return status.Error(codes.Internal, "no method in stream")
		}
		ctx, cancel := context.WithCancel(in.Context())
		defer cancel()
		md, _ := metadata.FromIncomingContext(ctx)
		out, err := conn.NewStream(metadata.NewOutgoingContext(ctx, md.Copy()), clientStreams, method, grpc.ForceCodecV2(rawCodec{}))
		if err != nil {
			return err
		}
		go func() { // ends with the call: ctx is cancelled on return
			for {
				f := &frame{}
				if err := in.RecvMsg(f); err != nil {
					if errors.Is(err, io.EOF) {
						_ = out.CloseSend()
					} else {
						cancel() // the downstream failed: abort the upstream call
					}
					return
				}
				if out.SendMsg(f) != nil {
					return // the upstream's status comes from RecvMsg below
				}
			}
		}()
		if hdr, err := out.Header(); err == nil && hdr.Len() > 0 {
			if err := in.SendHeader(hdr); err != nil {
				return err
			}
		}
		for {
			f := &frame{}
			if err := out.RecvMsg(f); err != nil {
				in.SetTrailer(out.Trailer())
				if errors.Is(err, io.EOF) {
					return nil
				}
				return err // a status error from the upstream, relayed as is
			}
			if err := in.SendMsg(f); err != nil {
				return err
			}
		}
	}
}
