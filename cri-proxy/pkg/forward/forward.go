package forward

import (
	"context"
	"io"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// unaryMethods are the CRI's unary methods. They are forwarded as unary
// calls, with neither the goroutine that pumps a stream's requests nor
// the one grpc-go adds to watch a client stream's context. Every other
// method, CRI streaming or unknown to the proxy, is forwarded as a
// bidirectional stream, which carries every kind of call.
var unaryMethods = func() map[string]bool {
	m := map[string]bool{}
	for _, sd := range []*grpc.ServiceDesc{&runtimeapi.RuntimeService_ServiceDesc, &runtimeapi.ImageService_ServiceDesc} {
		for _, md := range sd.Methods {
			m["/"+sd.ServiceName+"/"+md.MethodName] = true
		}
	}
	return m
}()

var streamDesc = &grpc.StreamDesc{ServerStreams: true, ClientStreams: true}

const detailsHeader = "grpc-status-details-bin"

// withMetadata returns ctx with md as its outgoing metadata, if any.
func withMetadata(ctx context.Context, md metadata.MD) context.Context {
	if len(md) == 0 {
		return ctx
	}
	return metadata.NewOutgoingContext(ctx, md)
}

// callMetadata is the client's metadata less what grpc-go sets itself
// (the deadline travels as the context's), and the content-subtype the
// client asked for ("" for plain application/grpc, as kubelet sends).
func callMetadata(ctx context.Context) (md metadata.MD, subtype string) {
	md, _ = metadata.FromIncomingContext(ctx) // a copy, ours to change
	for k, v := range md {
		if k == "content-type" && len(v) > 0 {
			subtype = contentSubtype(v[0])
		}
		if reserved(k) {
			delete(md, k)
		}
	}
	return md, subtype
}

// withSubtype adds the client's content-subtype to a call's options.
func withSubtype(opts []grpc.CallOption, subtype string) []grpc.CallOption {
	if subtype == "" {
		return opts
	}
	return append(opts, grpc.CallContentSubtype(subtype))
}

// reserved reports whether grpc-go sets a header of its own: pseudo-headers,
// content-type, user-agent (set per connection: the runtime sees the
// proxy's), te, and the grpc-* headers (grpc-timeout comes from the
// deadline; grpc-accept-encoding would announce compressors the proxy may
// lack).
func reserved(k string) bool {
	return strings.HasPrefix(k, ":") || strings.HasPrefix(k, "grpc-") ||
		k == "content-type" || k == "user-agent" || k == "te"
}

// contentSubtype is the subtype of a gRPC content-type, "" for plain
// application/grpc.
func contentSubtype(ct string) string {
	const base = "application/grpc"
	if len(ct) > len(base) && strings.HasPrefix(ct, base) && (ct[len(base)] == '+' || ct[len(base)] == ';') {
		return ct[len(base)+1:]
	}
	return ""
}

// unaryCall is a forwarded unary call's state, pooled: one call's messages,
// headers and call options.
type unaryCall struct {
	req, resp       frame
	header, trailer metadata.MD
	opts            [5]grpc.CallOption
}

var unaryCalls = sync.Pool{New: func() any {
	c := &unaryCall{}
	c.opts[0] = rawCodec
	c.opts[1] = unlimitedAnswers
	c.opts[2] = grpc.Header(&c.header)
	c.opts[3] = grpc.Trailer(&c.trailer)
	return c
}}

func (c *unaryCall) release() {
	c.req.free()
	c.resp.free()
	c.header, c.trailer = nil, nil
	c.opts[4] = nil
	unaryCalls.Put(c)
}

// forwardUnary forwards a CRI unary call: one request, one answer or a
// status.
func (p *Proxy) forwardUnary(ss grpc.ServerStream, method string) error {
	c := unaryCalls.Get().(*unaryCall)
	defer c.release()
	if err := ss.RecvMsg(&c.req); err != nil {
		if err == io.EOF { // no request at all: let the runtime judge
			return p.forwardStream(ss, method)
		}
		return err
	}
	ctx := ss.Context()
	md, subtype := callMetadata(ctx)
	err := p.conn.Invoke(withMetadata(ctx, md), method, &c.req, &c.resp, withSubtype(c.opts[:4], subtype)...)
	if c.header != nil {
		// The runtime sent headers: so does the proxy. Otherwise its answer
		// was trailers-only (grpc-go's ClientStream.Header returns nil
		// metadata then, and a header always carries content-type), and
		// the proxy's stays trailers-only: grpc-go's server sends one when
		// the handler fails without having sent or set any header.
		if err := ss.SendHeader(c.header); err != nil {
			return err
		}
	}
	if err != nil {
		return runtimeStatus(ss, err, c.trailer)
	}
	if err := ss.SendMsg(&c.resp); err != nil {
		return err
	}
	ss.SetTrailer(c.trailer)
	return nil
}

// forwardStream forwards a call of any kind as a bidirectional stream:
// requests and answers are passed on as they come, each way on a goroutine
// of its own.
func (p *Proxy) forwardStream(ss grpc.ServerStream, method string) error {
	// Cancelled when the client goes, and when this handler returns:
	// either way the runtime's call ends.
	ctx, cancel := context.WithCancel(ss.Context())
	defer cancel()
	md, subtype := callMetadata(ctx)
	opts := withSubtype([]grpc.CallOption{rawCodec, unlimitedAnswers}, subtype)
	cs, err := p.conn.NewStream(withMetadata(ctx, md), streamDesc, method, opts...)
	if err != nil {
		return err
	}
	reqErr := make(chan error, 1)
	go forwardRequests(ss, cs, cancel, reqErr)

	header, _ := cs.Header() // nil when trailers-only: see forwardUnary
	if header != nil {
		if err := ss.SendHeader(header); err != nil {
			return err
		}
	}
	var f frame
	for {
		if err := cs.RecvMsg(&f); err != nil {
			select {
			case err := <-reqErr: // the client's side failed first
				return err
			default:
			}
			if err == io.EOF {
				ss.SetTrailer(cs.Trailer())
				return nil
			}
			return runtimeStatus(ss, err, cs.Trailer())
		}
		if err := ss.SendMsg(&f); err != nil {
			f.free()
			return err
		}
	}
}

// forwardRequests passes a stream's requests on to the runtime, and the
// end of them. When reading the client fails, it ends the runtime's call
// and reports why, which the handler answers.
func forwardRequests(ss grpc.ServerStream, cs grpc.ClientStream, cancel context.CancelFunc, reqErr chan<- error) {
	var f frame
	for {
		if err := ss.RecvMsg(&f); err != nil {
			if err == io.EOF {
				cs.CloseSend()
				return
			}
			reqErr <- err
			cancel()
			return
		}
		if err := cs.SendMsg(&f); err != nil {
			// The runtime's call is over: its status comes from RecvMsg.
			f.free()
			return
		}
	}
}

// runtimeStatus returns the runtime's status error err, to be answered as
// is, and sets the runtime's trailer. grpc-go's server encodes a status's
// details into grpc-status-details-bin itself, but sends the trailer's
// when the status has none: so a status whose details grpc-go decoded from
// the runtime's header goes back without them, and the runtime's header
// passes byte for byte.
func runtimeStatus(ss grpc.ServerStream, err error, trailer metadata.MD) error {
	if d := trailer[detailsHeader]; len(d) > 0 {
		st, _ := status.FromError(err)
		switch {
		case len(st.Proto().GetDetails()) > 0:
			err = status.New(st.Code(), st.Message()).Err()
		case len(d) == 1 && statusCodeDiffers(d[0], st.Code()):
			// grpc-go answered Internal for the mismatch; the header would
			// make the client's status a mismatch of the mismatch.
			delete(trailer, detailsHeader)
		}
	}
	ss.SetTrailer(trailer)
	return err
}

// statusCodeDiffers reports whether s, a google.rpc.Status, decodes with a
// code other than code.
func statusCodeDiffers(s string, code codes.Code) bool {
	b := []byte(s)
	var got uint64 // field 1, code; 0 when absent
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false // undecodable: grpc-go ignored it, the client will too
		}
		b = b[n:]
		if num == 1 && typ == protowire.VarintType {
			v, m := protowire.ConsumeVarint(b)
			if m < 0 {
				return false
			}
			got, b = v, b[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return false
		}
		b = b[m:]
	}
	return int32(got) != int32(code)
}
