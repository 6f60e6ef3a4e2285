package forward

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The two connections of a pair.
const (
	down = 0 // the client's: the proxy is its server
	up   = 1 // the runtime's: the proxy is its client
)

// headerTableSize is the HPACK table size both peers may use with the
// proxy: HTTP/2's default, which the proxy does not change.
const headerTableSize = 4096

// maxHeaderBlock bounds a header block the proxy assembles.
const maxHeaderBlock = 16 << 20

// sendBufferSize is the socket send buffer asked for the client's
// connection (the kernel caps it at net.core.wmem_max).
const sendBufferSize = 4 << 20

// side is the proxy's end of one connection of a pair.
type side struct {
	conn net.Conn
	r    *frameReader
	w    *writer
	dec  *hpack.Decoder
	// A header block being assembled from CONTINUATION frames.
	inBlock     bool
	block       []byte
	blockStream uint32
	blockEnd    bool
	// Sending to this side: the connection's window, the peer's initial
	// stream window and frame size, and the streams waiting for window.
	connWindow int64
	initWindow int64
	maxFrame   int
	blocked    []*stream
	// Receiving from this side: bytes passed on and not given back yet.
	connCredit int64
}

func newSide(conn net.Conn) *side {
	return &side{
		conn:       conn,
		r:          newFrameReader(conn),
		w:          newWriter(conn),
		dec:        hpack.NewDecoder(headerTableSize, nil),
		connWindow: 65535,
		initWindow: 65535,
		maxFrame:   maxFrameSize,
	}
}

// pair is a client connection and the runtime connection opened for it.
// A forwarded call has a stream on each; its frames go from one connection
// to the other as they arrive, DATA frames unchanged but for the stream id
// when the receiver's window allows, header blocks decoded and re-encoded
// (each connection has its own HPACK state). Flow control is per
// connection: the proxy grants each peer windowSize and gives window back
// as what it received leaves for the other side. Two goroutines read the
// connections; frames are handled under mu and written in batches, one
// writev per read.
type pair struct {
	p      *Proxy
	ctx    context.Context // ends with the pair: intercepted calls' parent
	cancel context.CancelFunc

	mu        sync.Mutex
	sides     [2]*side
	upErr     error              // why the runtime's connection is unusable; nil while it is
	upGone    bool               // the runtime sent GOAWAY: no new streams go to it
	streams   map[uint32]*stream // by the client's stream id
	upStreams map[uint32]*stream // by the runtime's stream id
	lastID    uint32             // highest stream id the client opened
	nextUpID  uint32
	goingAway bool // GOAWAY sent to the client: the pair closes once idle
	closed    bool
	observed  []observation

	closeOnce sync.Once
}

type observation struct {
	method string
	d      time.Duration
	code   codes.Code
}

var errProtocol = errors.New("HTTP/2 protocol error")

// serveConn serves one client connection until it or the proxy closes.
func (p *Proxy) serveConn(c net.Conn) {
	pr := &pair{p: p, streams: map[uint32]*stream{}, upStreams: map[uint32]*stream{}, nextUpID: 1}
	pr.ctx, pr.cancel = context.WithCancel(context.Background())
	if uc, ok := c.(*net.UnixConn); ok {
		// Room for a whole large answer: the runtime's stream is not
		// held up while the client reads.
		_ = uc.SetWriteBuffer(sendBufferSize)
	}
	pr.sides[down] = newSide(c)
	if !p.track(pr) {
		c.Close()
		return
	}
	defer p.untrack(pr)
	d := pr.sides[down]
	d.w.settings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: windowSize})
	d.w.windowUpdate(0, windowSize-65535)
	if uc, err := net.DialTimeout("unix", p.opts.Upstream, dialTimeout); err != nil {
		pr.upErr = err
	} else {
		u := newSide(uc)
		pr.sides[up] = u
		u.w.raw([]byte(clientPreface))
		u.w.settings(http2.Setting{ID: http2.SettingEnablePush, Val: 0}, http2.Setting{ID: http2.SettingInitialWindowSize, Val: windowSize})
		u.w.windowUpdate(0, windowSize-65535)
		go pr.readLoop(up)
	}
	pr.flush()
	if err := d.r.readPreface(); err != nil {
		pr.close(codes.Canceled)
		return
	}
	pr.readLoop(down)
}

// readLoop handles a connection's frames until it fails: the client's
// failing closes the pair, the runtime's fails the calls in flight.
func (pr *pair) readLoop(i int) {
	s := pr.sides[i]
	err := func() error {
		for {
			for {
				h, frame, ok, err := s.r.next()
				if err != nil {
					return err
				}
				if !ok {
					break
				}
				if err := pr.handle(i, h, frame); err != nil {
					return err
				}
			}
			pr.flush()
			if err := s.r.fill(); err != nil {
				return err
			}
		}
	}()
	if i == down {
		pr.close(codes.Canceled)
		return
	}
	pr.mu.Lock()
	pr.upstreamLost(err)
	pr.mu.Unlock()
	pr.flush()
}

// flush writes what is queued for both connections and reports finished
// calls; a pair that went away and has no streams left closes.
func (pr *pair) flush() {
	pr.writeOut()
	pr.mu.Lock()
	idle := pr.goingAway && len(pr.streams) == 0
	pr.mu.Unlock()
	if idle {
		pr.close(codes.OK)
	}
}

// writeOut writes what is queued for both connections, closing one that
// cannot be written so that its reader fails, and reports finished calls.
func (pr *pair) writeOut() {
	for _, s := range pr.sides {
		if s != nil && s.w.flush() != nil {
			s.conn.Close()
		}
	}
	pr.mu.Lock()
	observed := pr.observed
	pr.observed = nil
	pr.mu.Unlock()
	if o := pr.p.opts.Observe; o != nil {
		for _, ob := range observed {
			o(ob.method, ob.d, ob.code)
		}
	}
}

// closeWriteTimeout bounds the last writes to a closing pair's connections.
const closeWriteTimeout = time.Second

// close ends the pair: what is queued is written, both connections are
// closed, and every call still in flight is reported with code.
func (pr *pair) close(code codes.Code) {
	pr.closeOnce.Do(func() {
		pr.mu.Lock()
		pr.closed = true
		for _, st := range pr.streams {
			pr.observe(st, code)
			pr.remove(st)
		}
		for _, st := range pr.upStreams {
			if st.call != nil {
				pr.finishCall(st, status.Error(codes.Unavailable, "client connection closed"))
			}
		}
		pr.mu.Unlock()
		pr.cancel()
		for _, s := range pr.sides {
			if s != nil {
				_ = s.conn.SetWriteDeadline(time.Now().Add(closeWriteTimeout))
			}
		}
		pr.writeOut()
		for _, s := range pr.sides {
			if s != nil {
				s.conn.Close()
			}
		}
	})
}

// handle acts on one frame from side i.
func (pr *pair) handle(i int, h frameHeader, frame []byte) error {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.closed {
		return net.ErrClosed
	}
	s := pr.sides[i]
	if s.inBlock && h.typ != http2.FrameContinuation {
		return fmt.Errorf("%w: %v frame inside a header block", errProtocol, h.typ)
	}
	switch h.typ {
	case http2.FrameData:
		return pr.onData(i, h, frame)
	case http2.FrameHeaders:
		p, err := payload(h, frame)
		if err != nil {
			return fmt.Errorf("%w: %w", errProtocol, err)
		}
		end := h.flags.Has(http2.FlagHeadersEndStream)
		if !h.flags.Has(http2.FlagHeadersEndHeaders) {
			s.inBlock, s.block, s.blockStream, s.blockEnd = true, append(s.block[:0], p...), h.streamID, end
			return nil
		}
		return pr.onHeaders(i, h.streamID, p, end)
	case http2.FrameContinuation:
		if !s.inBlock || h.streamID != s.blockStream {
			return fmt.Errorf("%w: unexpected CONTINUATION", errProtocol)
		}
		s.block = append(s.block, frame[frameHeaderLen:]...)
		if len(s.block) > maxHeaderBlock {
			return fmt.Errorf("%w: header block over %d bytes", errProtocol, maxHeaderBlock)
		}
		if !h.flags.Has(http2.FlagContinuationEndHeaders) {
			return nil
		}
		s.inBlock = false
		return pr.onHeaders(i, h.streamID, s.block, s.blockEnd)
	case http2.FrameRSTStream:
		if h.length != 4 {
			return fmt.Errorf("%w: RST_STREAM of %d bytes", errProtocol, h.length)
		}
		pr.onReset(i, h.streamID, http2.ErrCode(binary.BigEndian.Uint32(frame[frameHeaderLen:])))
	case http2.FrameSettings:
		if !h.flags.Has(http2.FlagSettingsAck) {
			return pr.onSettings(i, frame[frameHeaderLen:])
		}
	case http2.FramePing:
		if !h.flags.Has(http2.FlagPingAck) {
			s.w.frame(http2.FramePing, http2.FlagPingAck, 0, frame[frameHeaderLen:])
		}
	case http2.FrameGoAway:
		if i == up && h.length >= 8 {
			pr.onUpstreamGoAway(binary.BigEndian.Uint32(frame[frameHeaderLen:]) & (1<<31 - 1))
		}
	case http2.FrameWindowUpdate:
		if h.length != 4 {
			return fmt.Errorf("%w: WINDOW_UPDATE of %d bytes", errProtocol, h.length)
		}
		pr.onWindowUpdate(i, h.streamID, int64(binary.BigEndian.Uint32(frame[frameHeaderLen:])&(1<<31-1)))
	}
	// PRIORITY, PUSH_PROMISE (push is off) and unknown frames are ignored.
	return nil
}

func (pr *pair) onSettings(i int, p []byte) error {
	if len(p)%6 != 0 {
		return fmt.Errorf("%w: SETTINGS of %d bytes", errProtocol, len(p))
	}
	s := pr.sides[i]
	var table uint32
	hasTable, grown := false, false
	for ; len(p) > 0; p = p[6:] {
		v := binary.BigEndian.Uint32(p[2:])
		switch http2.SettingID(binary.BigEndian.Uint16(p)) {
		case http2.SettingInitialWindowSize:
			if v > 1<<31-1 {
				return fmt.Errorf("%w: initial window size %d", errProtocol, v)
			}
			delta := int64(v) - s.initWindow
			s.initWindow = int64(v)
			for _, st := range pr.streamsOf(i) {
				st.out[i].window += delta
			}
			grown = grown || delta > 0
		case http2.SettingMaxFrameSize:
			if v < 1<<14 || v > 1<<24-1 {
				return fmt.Errorf("%w: max frame size %d", errProtocol, v)
			}
			s.maxFrame = int(v)
		case http2.SettingHeaderTableSize:
			table, hasTable = v, true
		}
	}
	s.w.setPeerSettings(s.maxFrame, table, hasTable)
	s.w.frame(http2.FrameSettings, http2.FlagSettingsAck, 0, nil)
	if grown {
		for _, st := range pr.streamsOf(i) {
			pr.drain(st, i)
		}
	}
	return nil
}

func (pr *pair) streamsOf(i int) map[uint32]*stream {
	if i == down {
		return pr.streams
	}
	return pr.upStreams
}

// upstreamLost fails the calls the runtime has not finished answering
// with Unavailable and sends the client away: its next calls go on a new
// connection, with a new runtime connection.
func (pr *pair) upstreamLost(err error) {
	if pr.upErr != nil || pr.closed {
		return
	}
	pr.upErr = fmt.Errorf("connection to the runtime lost: %w", err)
	pr.sides[up].conn.Close()
	for _, st := range pr.upStreams {
		if st.call != nil {
			pr.finishCall(st, status.Error(codes.Unavailable, pr.upErr.Error()))
		}
	}
	for _, st := range pr.streams {
		if st.answered || st.ended[up] {
			continue
		}
		st.answered, st.out[up].ended = true, st.ended[down]
		st.out[down].pending, st.out[up].pending = nil, nil
		pr.fail(st, codes.Unavailable, pr.upErr.Error())
	}
	pr.goAway()
}

// onUpstreamGoAway: streams the runtime will not process are refused to
// the client, which retries them on a new connection, and so does every
// later call.
func (pr *pair) onUpstreamGoAway(lastID uint32) {
	pr.upGone = true
	for _, st := range pr.upStreams {
		switch {
		case st.ids[up] <= lastID:
		case st.call != nil:
			pr.finishCall(st, status.Error(codes.Unavailable, "the runtime is going away"))
		default:
			pr.sides[down].w.rstStream(st.ids[down], http2.ErrCodeRefusedStream)
			pr.observe(st, codes.Unavailable)
			pr.remove(st)
		}
	}
	pr.goAway()
}

// goAway tells the client to open no more streams on this connection;
// the pair closes once its streams are done.
func (pr *pair) goAway() {
	if !pr.goingAway {
		pr.goingAway = true
		pr.sides[down].w.goAway(pr.lastID, http2.ErrCodeNo, "")
	}
}

func (pr *pair) observe(st *stream, code codes.Code) {
	if !st.observed {
		st.observed = true
		pr.observed = append(pr.observed, observation{method: st.method, d: time.Since(st.start), code: code})
	}
}
