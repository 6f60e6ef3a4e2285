package forward

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"

	"golang.org/x/net/http2"
)

const (
	frameHeaderLen = 9
	// clientPreface starts every HTTP/2 connection a client opens.
	clientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
	// maxFrameSize is the largest frame the proxy accepts: it advertises
	// none, so peers stay within HTTP/2's default.
	maxFrameSize = 16 << 10
	// readBufferSize bounds how much one read takes off a connection.
	readBufferSize = 256 << 10
)

// frameHeader is an HTTP/2 frame header.
type frameHeader struct {
	length   uint32
	typ      http2.FrameType
	flags    http2.Flags
	streamID uint32
}

func parseFrameHeader(b []byte) frameHeader {
	return frameHeader{
		length:   uint32(b[0])<<16 | uint32(b[1])<<8 | uint32(b[2]),
		typ:      http2.FrameType(b[3]),
		flags:    http2.Flags(b[4]),
		streamID: binary.BigEndian.Uint32(b[5:]) & (1<<31 - 1),
	}
}

func appendFrameHeader(b []byte, length int, typ http2.FrameType, flags http2.Flags, streamID uint32) []byte {
	return append(b, byte(length>>16), byte(length>>8), byte(length), byte(typ), byte(flags),
		byte(streamID>>24), byte(streamID>>16), byte(streamID>>8), byte(streamID))
}

// frameReader reads frames off a connection into one buffer; a frame's
// bytes stay valid until the next fill.
type frameReader struct {
	conn       net.Conn
	buf        []byte
	start, end int
}

func newFrameReader(conn net.Conn) *frameReader {
	return &frameReader{conn: conn, buf: make([]byte, readBufferSize)}
}

var errFrameTooLarge = errors.New("frame larger than the maximum frame size")

// next returns the next complete frame in the buffer, whole (header
// included), and its header; ok is false when it needs a fill.
func (r *frameReader) next() (h frameHeader, frame []byte, ok bool, err error) {
	avail := r.buf[r.start:r.end]
	if len(avail) < frameHeaderLen {
		return h, nil, false, nil
	}
	h = parseFrameHeader(avail)
	if h.length > maxFrameSize {
		return h, nil, false, fmt.Errorf("%v frame of %d bytes: %w", h.typ, h.length, errFrameTooLarge)
	}
	n := frameHeaderLen + int(h.length)
	if len(avail) < n {
		return h, nil, false, nil
	}
	r.start += n
	return h, avail[:n:n], true, nil
}

// fill reads more, moving an incomplete frame to the buffer's start first:
// frames returned by next are no longer valid.
func (r *frameReader) fill() error {
	if r.start > 0 {
		r.end = copy(r.buf, r.buf[r.start:r.end])
		r.start = 0
	}
	n, err := r.conn.Read(r.buf[r.end:])
	r.end += n
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// readPreface consumes the client connection preface.
func (r *frameReader) readPreface() error {
	for r.end-r.start < len(clientPreface) {
		if err := r.fill(); err != nil {
			return fmt.Errorf("read client preface: %w", err)
		}
	}
	if string(r.buf[r.start:r.start+len(clientPreface)]) != clientPreface {
		return errors.New("not an HTTP/2 client preface")
	}
	r.start += len(clientPreface)
	return nil
}

// payload strips a frame's header and, when the frame is padded, its
// padding (and for HEADERS, the priority fields).
func payload(h frameHeader, frame []byte) ([]byte, error) {
	p := frame[frameHeaderLen:]
	pad := 0
	if (h.typ == http2.FrameData || h.typ == http2.FrameHeaders) && h.flags.Has(http2.FlagDataPadded) {
		if len(p) == 0 {
			return nil, errors.New("padded frame without pad length")
		}
		pad = int(p[0])
		p = p[1:]
	}
	if h.typ == http2.FrameHeaders && h.flags.Has(http2.FlagHeadersPriority) {
		if len(p) < 5 {
			return nil, errors.New("HEADERS frame too short for its priority")
		}
		p = p[5:]
	}
	if pad > len(p) {
		return nil, errors.New("padding longer than the frame")
	}
	return p[:len(p)-pad], nil
}
