package forward

import (
	"context"
	"fmt"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
)

// localCall is an intercepted call: the proxy collects the request, runs
// the method's handler and answers. The pair's lock guards it but for the
// fields the handler's goroutine owns.
type localCall struct {
	handler UnaryHandler
	fields  []hpack.HeaderField // the request's headers
	md      metadata.MD
	timeout time.Duration
	body    []byte // the request as framed on the wire
	started bool   // the handler runs or the call was answered: later data is dropped
	cancel  context.CancelFunc
	// The runtime's response headers and trailers, from the last next.
	header, trailer []hpack.HeaderField
}

// upCall is one of a handler's next calls: a stream of the proxy's own on
// the runtime's connection.
type upCall struct {
	done            chan struct{} // closed when finished
	finished        bool
	header, trailer []hpack.HeaderField
	body            []byte
	err             error
}

func (pr *pair) intercept(st *stream, fields []hpack.HeaderField) {
	md, timeout, err := requestMetadata(fields)
	st.local = &localCall{handler: pr.p.opts.Intercept[st.method], fields: fields, md: md, timeout: timeout}
	if err != nil {
		st.local.started = true
		pr.fail(st, codes.Internal, fmt.Sprintf("request headers: %v", err))
		return
	}
	if st.out[up].ended {
		pr.startLocal(st)
	}
}

// requestData collects an answered stream's request.
func (pr *pair) requestData(st *stream, p []byte) {
	c := st.local
	if c == nil || c.started {
		return
	}
	if len(c.body)+len(p) > grpcPrefixLen+pr.p.opts.MaxMsgSize {
		c.started = true
		pr.fail(st, codes.ResourceExhausted, fmt.Sprintf("received message larger than max (%d)", pr.p.opts.MaxMsgSize))
		return
	}
	c.body = append(c.body, p...)
}

// requestEnded: the client of a stream the proxy answers is done sending.
func (pr *pair) requestEnded(st *stream) {
	st.out[up].ended = true
	if st.local != nil && !st.local.started {
		pr.startLocal(st)
	}
	pr.maybeClose(st)
}

// startLocal runs an intercepted call's handler in a goroutine of its own.
func (pr *pair) startLocal(st *stream) {
	c := st.local
	c.started = true
	ctx, cancel := context.WithCancel(pr.ctx)
	if c.timeout > 0 {
		ctx, cancel = context.WithTimeout(pr.ctx, c.timeout)
	}
	c.cancel = cancel
	go pr.runLocal(ctx, st, c)
}

func (pr *pair) runLocal(ctx context.Context, st *stream, c *localCall) {
	defer c.cancel()
	var resp []byte
	req, err := unframe(c.body, pr.p.opts.MaxMsgSize, "request")
	if err == nil {
		next := func(ctx context.Context, req []byte) ([]byte, error) {
			return pr.next(ctx, st, req)
		}
		resp, err = c.handler(metadata.NewIncomingContext(ctx, c.md), req, next)
	}
	pr.mu.Lock()
	pr.respond(st, resp, err, c.header, c.trailer)
	pr.mu.Unlock()
	pr.flush()
}

// respond answers a stream the proxy answers with resp or err's status,
// with the runtime's header and custom trailer fields from the handler's
// last next call. A client still sending is then reset, as gRPC servers do.
func (pr *pair) respond(st *stream, resp []byte, err error, header, trailer []hpack.HeaderField) {
	if st.closed || st.out[down].ended {
		return
	}
	pr.observe(st, status.Code(err))
	trailer = customFields(trailer)
	switch {
	case err == nil:
		pr.sendHeaders(st, down, responseHeaders(header), false)
		pr.sendData(st, down, frameMessage(resp), false)
		pr.sendHeaders(st, down, statusFields(trailer, nil), true)
	case header != nil:
		pr.sendHeaders(st, down, header, false)
		pr.sendHeaders(st, down, statusFields(trailer, err), true)
	default: // trailers-only
		pr.sendHeaders(st, down, statusFields(append(responseHeaders(nil), trailer...), err), true)
	}
	if !st.closed && !st.out[up].ended {
		st.out[up].ended = true
		pr.sendReset(st, down, http2.ErrCodeNo)
	}
}

// fail answers a stream with a status of the proxy's own, for failures of
// the proxy or of the runtime's connection.
func (pr *pair) fail(st *stream, code codes.Code, msg string) {
	pr.respond(st, nil, status.Error(code, msg), nil, nil)
}

// next forwards a request of intercepted call st, as its handler made it,
// with the call's headers, and waits for the runtime's answer.
func (pr *pair) next(ctx context.Context, st *stream, req []byte) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, status.FromContextError(err).Err()
	}
	fields, err := upstreamRequest(ctx, st.local.fields)
	if err != nil {
		return nil, err
	}
	call := &upCall{done: make(chan struct{})}
	cs := &stream{method: st.method, start: time.Now(), call: call}
	pr.mu.Lock()
	switch {
	case pr.closed:
		err = status.Error(codes.Unavailable, "client connection closed")
	case pr.upErr != nil:
		err = status.Errorf(codes.Unavailable, "cannot reach the runtime: %v", pr.upErr)
	case pr.upGone || !pr.openUpstream(cs):
		err = status.Error(codes.Unavailable, "the runtime's connection is going away")
	default:
		pr.sendHeaders(cs, up, fields, false)
		pr.sendData(cs, up, frameMessage(req), true)
	}
	pr.mu.Unlock()
	if err != nil {
		return nil, err
	}
	pr.writeOut()
	select {
	case <-call.done:
	case <-ctx.Done():
		pr.mu.Lock()
		if !call.finished {
			pr.sides[up].w.rstStream(cs.ids[up], http2.ErrCodeCancel)
			pr.finishCall(cs, status.FromContextError(ctx.Err()).Err())
		}
		pr.mu.Unlock()
		pr.writeOut()
	}
	pr.mu.Lock()
	defer pr.mu.Unlock()
	st.local.header, st.local.trailer = call.header, call.trailer
	if call.err != nil {
		return nil, call.err
	}
	return unframeResponse(call.body, pr.p.opts.MaxMsgSize)
}

// callHeaders takes the runtime's headers or trailers for a next call.
func (pr *pair) callHeaders(cs *stream, fields []hpack.HeaderField, end bool) {
	if !end {
		cs.call.header = fields
		return
	}
	cs.ended[up] = true
	cs.call.trailer = fields
	pr.finishCall(cs, statusFromFields(fields))
}

// callData collects the runtime's answer to a next call.
func (pr *pair) callData(cs *stream, p []byte, end bool) {
	c := cs.call
	if len(c.body)+len(p) > grpcPrefixLen+pr.p.opts.MaxMsgSize {
		pr.sides[up].w.rstStream(cs.ids[up], http2.ErrCodeCancel)
		pr.finishCall(cs, status.Errorf(codes.ResourceExhausted, "received message larger than max (%d)", pr.p.opts.MaxMsgSize))
		return
	}
	c.body = append(c.body, p...)
	if end {
		pr.finishCall(cs, status.Error(codes.Internal, "the runtime ended the stream without a status"))
	}
}

// finishCall ends a next call with err, nil for success.
func (pr *pair) finishCall(cs *stream, err error) {
	c := cs.call
	if c.finished {
		return
	}
	c.finished, c.err = true, err
	close(c.done)
	pr.remove(cs)
}
