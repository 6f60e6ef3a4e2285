package forward

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// interceptedCall is an intercepted call: its handler's next calls go to
// the runtime with the call's metadata, and the last one's headers and
// trailer go back to the client.
type interceptedCall struct {
	p      *Proxy
	method string
	md     metadata.MD
	opts   []grpc.CallOption // content-subtype, if the client set one

	mu              sync.Mutex // next may run on the handler's goroutines
	header, trailer metadata.MD
}

// intercept serves an intercepted method: it collects the request, runs
// the handler and answers what it returns.
func (p *Proxy) intercept(ss grpc.ServerStream, method string, h UnaryHandler) error {
	var in frame
	if err := ss.RecvMsg(&in); err != nil {
		return err // io.EOF without a request: Unknown, as grpc-go answers
	}
	if n := in.data.Len(); n > p.opts.MaxMsgSize {
		in.free()
		// grpc-go's words, as if the server's limit were MaxMsgSize.
		return status.Errorf(codes.ResourceExhausted, "grpc: received message larger than max (%d vs. %d)", n, p.opts.MaxMsgSize)
	}
	// The handler gets bytes of its own: it may keep them.
	req := in.data.Materialize()
	in.free()

	c := &interceptedCall{p: p, method: method}
	ctx := ss.Context()
	var subtype string
	c.md, subtype = callMetadata(ctx)
	c.opts = withSubtype(nil, subtype)
	resp, err := h(metadata.NewIncomingContext(ctx, c.md), req, c.next)

	c.mu.Lock()
	header, trailer := c.header, c.trailer
	c.mu.Unlock()
	// The handler's status is the one that counts: grpc-go encodes its
	// details, if any.
	delete(trailer, detailsHeader)
	if header != nil { // only if the runtime sent headers
		if err := ss.SendHeader(header); err != nil {
			return err
		}
	}
	ss.SetTrailer(trailer)
	if err != nil {
		return err
	}
	// The handler is done with resp: the transport may take it as is.
	return ss.SendMsg(&frame{data: mem.BufferSlice{mem.SliceBuffer(resp)}})
}

// next sends req to the runtime with the call's metadata and returns the
// runtime's answer, or its status error unchanged.
func (c *interceptedCall) next(ctx context.Context, req []byte) ([]byte, error) {
	// The transport may still hold a request when the answer is in (the
	// runtime may answer early): it gets a copy, so the handler may reuse
	// req.
	in := frame{data: mem.BufferSlice{mem.Copy(req, mem.DefaultBufferPool())}}
	defer in.free()
	var resp frame
	defer resp.free()
	var header, trailer metadata.MD
	var optsBuf [4]grpc.CallOption
	opts := append(append(optsBuf[:0], rawCodec, grpc.Header(&header), grpc.Trailer(&trailer)), c.opts...)
	// MaxMsgSize bounds the answer: the connection's default.
	err := c.p.conn.Invoke(metadata.NewOutgoingContext(ctx, c.md), c.method, &in, &resp, opts...)
	c.mu.Lock()
	c.header, c.trailer = header, trailer
	c.mu.Unlock()
	if err != nil {
		return nil, err
	}
	return resp.data.Materialize(), nil
}
