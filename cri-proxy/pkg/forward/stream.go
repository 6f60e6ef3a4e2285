package forward

import (
	"encoding/binary"
	"fmt"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// stream is a call on the client's connection, the runtime's, or both: a
// forwarded call has a stream on each, an intercepted one is answered by
// the proxy on the client's and each of its handler's next calls is a
// stream of the proxy's own on the runtime's.
type stream struct {
	ids      [2]uint32 // the stream's id on each side; 0 where it has none
	method   string
	start    time.Time
	answered bool       // the proxy answers the client, not the runtime
	local    *localCall // an intercepted call, on the client's side
	call     *upCall    // a handler's next call, on the runtime's side
	out      [2]outbound
	credit   [2]int64 // received from each side, passed on, not given back yet
	ended    [2]bool  // END_STREAM received from each side
	closed   bool
	observed bool
}

// outbound is what the proxy sends to one side on a stream. For calls the
// proxy answers, the runtime's side counts as ended once the request has.
type outbound struct {
	window      int64
	pending     []chunk // waiting for window, in order
	blocked     bool    // in the side's blocked list
	headersSent bool
	ended       bool // END_STREAM or RST_STREAM queued
}

// chunk is a pending piece of a stream: data, a header block or a reset.
type chunk struct {
	data     []byte
	credit   bool // data came from the other side, which gets window back
	headers  []hpack.HeaderField
	isHeader bool
	reset    bool
	code     http2.ErrCode
	end      bool
}

// lookup returns side i's stream id.
func (pr *pair) lookup(i int, id uint32) *stream {
	if i == down {
		return pr.streams[id]
	}
	return pr.upStreams[id]
}

// openUpstream gives st a new stream id on the runtime's connection; false
// when there are none left.
func (pr *pair) openUpstream(st *stream) bool {
	if pr.nextUpID > 1<<31-1 {
		return false
	}
	st.ids[up] = pr.nextUpID
	pr.nextUpID += 2
	st.out[up].window = pr.sides[up].initWindow
	pr.upStreams[st.ids[up]] = st
	return true
}

func (pr *pair) onHeaders(i int, id uint32, block []byte, end bool) error {
	fields, err := pr.sides[i].dec.DecodeFull(block)
	if err != nil {
		return fmt.Errorf("%w: header block: %w", errProtocol, err)
	}
	if i == up {
		st := pr.upStreams[id]
		switch {
		case st == nil:
		case st.call != nil:
			pr.callHeaders(st, fields, end)
		default:
			if end {
				st.ended[up] = true
				pr.observe(st, statusCode(fields))
			}
			pr.sendHeaders(st, down, fields, end)
		}
		return nil
	}
	if st := pr.streams[id]; st != nil { // request trailers
		switch {
		case st.answered:
			if end {
				pr.requestEnded(st)
			}
		case !st.out[up].ended:
			pr.sendHeaders(st, up, fields, end)
		}
		st.ended[down] = st.ended[down] || end
		return nil
	}
	if id%2 == 0 || id <= pr.lastID {
		return fmt.Errorf("%w: client opened stream %d after %d", errProtocol, id, pr.lastID)
	}
	pr.lastID = id
	st := &stream{ids: [2]uint32{down: id}, start: time.Now()}
	st.ended[down] = end
	st.out[down].window = pr.sides[down].initWindow
	for _, f := range fields {
		if f.Name == ":path" {
			st.method = f.Value
		}
	}
	switch {
	case pr.goingAway:
		pr.sides[down].w.rstStream(id, http2.ErrCodeRefusedStream)
	case pr.upErr != nil:
		// The runtime cannot be reached: answer, then send the client
		// away so that it reconnects, and the proxy dials again.
		pr.streams[id] = st
		st.answered, st.out[up].ended = true, end
		pr.fail(st, codes.Unavailable, fmt.Sprintf("cannot reach the runtime: %v", pr.upErr))
		pr.goAway()
	case pr.p.opts.Intercept[st.method] != nil:
		pr.streams[id] = st
		st.answered, st.out[up].ended = true, end
		pr.intercept(st, fields)
	case pr.upGone || !pr.openUpstream(st):
		pr.sides[down].w.rstStream(id, http2.ErrCodeRefusedStream)
		pr.goAway()
	default:
		pr.streams[id] = st
		pr.sendHeaders(st, up, fields, end)
	}
	return nil
}

func (pr *pair) onData(i int, h frameHeader, frame []byte) error {
	st := pr.lookup(i, h.streamID)
	n := int64(h.length)
	if st == nil || st.ended[i] {
		pr.giveBack(nil, i, n)
		return nil
	}
	end := h.flags.Has(http2.FlagDataEndStream)
	to := 1 - i
	if st.answered || st.call != nil || st.out[to].ended {
		p, err := payload(h, frame)
		if err != nil {
			return fmt.Errorf("%w: %w", errProtocol, err)
		}
		st.ended[i] = end
		pr.giveBack(st, i, n)
		switch {
		case st.call != nil:
			pr.callData(st, p, end)
		case st.answered:
			pr.requestData(st, p)
			if end {
				pr.requestEnded(st)
			}
		}
		return nil
	}
	st.ended[i] = end
	o, t := &st.out[to], pr.sides[to]
	if len(o.pending) == 0 && n <= t.connWindow && n <= o.window {
		// The frame goes on unchanged but for its stream id.
		t.connWindow -= n
		o.window -= n
		binary.BigEndian.PutUint32(frame[5:frameHeaderLen], st.ids[to])
		t.w.raw(frame)
		pr.giveBack(st, i, n)
		if end {
			o.ended = true
			pr.maybeClose(st)
		}
		return nil
	}
	p, err := payload(h, frame)
	if err != nil {
		return fmt.Errorf("%w: %w", errProtocol, err)
	}
	pr.giveBack(st, i, n-int64(len(p)))
	o.pending = append(o.pending, chunk{data: append([]byte(nil), p...), credit: true, end: end})
	pr.drain(st, to)
	return nil
}

func (pr *pair) onReset(i int, id uint32, code http2.ErrCode) {
	st := pr.lookup(i, id)
	if st == nil {
		return
	}
	switch {
	case st.call != nil:
		pr.finishCall(st, status.Errorf(resetCode(code), "stream reset by the runtime: %v", code))
	case i == down:
		if st.local != nil && st.local.cancel != nil {
			st.local.cancel()
		}
		if !st.answered && !st.out[up].ended {
			pr.sides[up].w.rstStream(st.ids[up], code)
		}
		pr.observe(st, codes.Canceled)
		pr.remove(st)
	default:
		pr.observe(st, resetCode(code))
		pr.sendReset(st, down, code)
	}
}

// resetCode is the code a gRPC client reports for a stream reset with c.
func resetCode(c http2.ErrCode) codes.Code {
	switch c {
	case http2.ErrCodeRefusedStream:
		return codes.Unavailable
	case http2.ErrCodeCancel:
		return codes.Canceled
	case http2.ErrCodeEnhanceYourCalm:
		return codes.ResourceExhausted
	case http2.ErrCodeInadequateSecurity:
		return codes.PermissionDenied
	}
	return codes.Internal
}

// maybeClose forgets a stream once both directions ended and nothing is
// pending.
func (pr *pair) maybeClose(st *stream) {
	if st.out[down].ended && st.out[up].ended && len(st.out[down].pending) == 0 && len(st.out[up].pending) == 0 {
		pr.remove(st)
	}
}

// remove forgets a stream. A call whose outcome is unknown (a runtime
// stream that ended without trailers) is reported as Internal, which is
// what a gRPC client sees.
func (pr *pair) remove(st *stream) {
	if st.closed {
		return
	}
	if st.call == nil {
		pr.observe(st, codes.Internal)
	}
	st.closed = true
	st.out[down].pending, st.out[up].pending = nil, nil
	if pr.streams[st.ids[down]] == st {
		delete(pr.streams, st.ids[down])
	}
	if pr.upStreams[st.ids[up]] == st {
		delete(pr.upStreams, st.ids[up])
	}
}
