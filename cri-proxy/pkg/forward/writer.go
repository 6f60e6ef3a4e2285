package forward

import (
	"bytes"
	"encoding/binary"
	"net"
	"sync"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// writer queues frames for one connection and writes what is queued with
// one writev on flush. Frames forwarded unchanged are queued by reference:
// their reader flushes before it reuses its buffer. Header blocks are
// encoded when queued, under the writer's lock, so that the peer decodes
// them in the order their encoder saw them.
type writer struct {
	mu       sync.Mutex
	conn     net.Conn
	vec      [][]byte // queued, in order
	scratch  []byte   // frames built here; scratch[sealed:] is not in vec yet
	sealed   int
	enc      *hpack.Encoder
	encBuf   bytes.Buffer
	maxFrame int // the peer's SETTINGS_MAX_FRAME_SIZE
	err      error
}

func newWriter(conn net.Conn) *writer {
	w := &writer{conn: conn, maxFrame: maxFrameSize}
	w.enc = hpack.NewEncoder(&w.encBuf)
	return w
}

func (w *writer) seal() {
	if len(w.scratch) > w.sealed {
		w.vec = append(w.vec, w.scratch[w.sealed:len(w.scratch):len(w.scratch)])
		w.sealed = len(w.scratch)
	}
}

// raw queues b, which must stay unchanged until the next flush.
func (w *writer) raw(b []byte) {
	w.mu.Lock()
	w.seal()
	w.vec = append(w.vec, b)
	w.mu.Unlock()
}

// frame queues a frame with payload p, copied.
func (w *writer) frame(typ http2.FrameType, flags http2.Flags, streamID uint32, p []byte) {
	w.mu.Lock()
	w.scratch = appendFrameHeader(w.scratch, len(p), typ, flags, streamID)
	w.scratch = append(w.scratch, p...)
	w.mu.Unlock()
}

// data queues a DATA frame whose payload p, not copied, must stay
// unchanged until the next flush.
func (w *writer) data(streamID uint32, endStream bool, p []byte) {
	var flags http2.Flags
	if endStream {
		flags = http2.FlagDataEndStream
	}
	w.mu.Lock()
	w.scratch = appendFrameHeader(w.scratch, len(p), http2.FrameData, flags, streamID)
	if len(p) > 0 {
		w.seal()
		w.vec = append(w.vec, p)
	}
	w.mu.Unlock()
}

func (w *writer) windowUpdate(streamID uint32, n uint32) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	w.frame(http2.FrameWindowUpdate, 0, streamID, b[:])
}

func (w *writer) rstStream(streamID uint32, code http2.ErrCode) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(code))
	w.frame(http2.FrameRSTStream, 0, streamID, b[:])
}

func (w *writer) goAway(lastStreamID uint32, code http2.ErrCode, debug string) {
	b := binary.BigEndian.AppendUint32(nil, lastStreamID)
	b = binary.BigEndian.AppendUint32(b, uint32(code))
	w.frame(http2.FrameGoAway, 0, 0, append(b, debug...))
}

func (w *writer) settings(s ...http2.Setting) {
	var b []byte
	for _, s := range s {
		b = binary.BigEndian.AppendUint16(b, uint16(s.ID))
		b = binary.BigEndian.AppendUint32(b, s.Val)
	}
	w.frame(http2.FrameSettings, 0, 0, b)
}

// headers encodes fields as one header block and queues it as a HEADERS
// frame and as many CONTINUATION frames as the peer's frame size needs.
func (w *writer) headers(streamID uint32, endStream bool, fields []hpack.HeaderField) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.encBuf.Reset()
	for _, f := range fields {
		_ = w.enc.WriteField(f) // writes to a bytes.Buffer: no error
	}
	block := w.encBuf.Bytes()
	typ, flags := http2.FrameHeaders, http2.Flags(0)
	if endStream {
		flags = http2.FlagHeadersEndStream
	}
	for {
		n := min(len(block), w.maxFrame)
		if n == len(block) {
			flags |= http2.FlagHeadersEndHeaders
		}
		w.scratch = appendFrameHeader(w.scratch, n, typ, flags, streamID)
		w.scratch = append(w.scratch, block[:n]...)
		block = block[n:]
		if len(block) == 0 {
			return
		}
		typ, flags = http2.FrameContinuation, 0
	}
}

// setPeerSettings applies the peer's frame and header table sizes.
func (w *writer) setPeerSettings(maxFrame int, headerTable uint32, hasHeaderTable bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if maxFrame > 0 {
		w.maxFrame = maxFrame
	}
	if hasHeaderTable {
		w.enc.SetMaxDynamicTableSizeLimit(headerTable)
	}
}

// flush writes everything queued.
func (w *writer) flush() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.seal()
	if len(w.vec) > 0 && w.err == nil {
		bufs := net.Buffers(w.vec)
		_, w.err = bufs.WriteTo(w.conn)
	}
	clear(w.vec)
	w.vec, w.scratch, w.sealed = w.vec[:0], w.scratch[:0], 0
	return w.err
}
