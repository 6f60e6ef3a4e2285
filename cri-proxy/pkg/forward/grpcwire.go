package forward

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// gRPC over HTTP/2, as far as the proxy speaks it itself: for the calls it
// answers (intercepted ones, and any call while the runtime is down).

const grpcPrefixLen = 5 // compressed flag and big-endian length

// unframe returns the single uncompressed message of a unary request or
// response body (what names it in errors).
func unframe(body []byte, maxMsgSize int, what string) ([]byte, error) {
	if len(body) < grpcPrefixLen {
		return nil, status.Errorf(codes.Internal, "%s without a complete message", what)
	}
	if body[0] != 0 {
		return nil, status.Errorf(codes.Internal, "compressed %s: the proxy does not decompress", what)
	}
	n := binary.BigEndian.Uint32(body[1:grpcPrefixLen])
	if int64(n) > int64(maxMsgSize) {
		return nil, status.Errorf(codes.ResourceExhausted, "received message larger than max (%d vs. %d)", n, maxMsgSize)
	}
	if int64(len(body)-grpcPrefixLen) != int64(n) {
		return nil, status.Errorf(codes.Internal, "%s is not exactly one message", what)
	}
	return body[grpcPrefixLen:], nil
}

// frameMessage prefixes msg for the wire, uncompressed.
func frameMessage(msg []byte) []byte {
	b := make([]byte, grpcPrefixLen, grpcPrefixLen+len(msg))
	binary.BigEndian.PutUint32(b[1:], uint32(len(msg)))
	return append(b, msg...)
}

// requestMetadata returns a request's custom metadata (binary values
// decoded) and its grpc-timeout, zero when absent.
func requestMetadata(fields []hpack.HeaderField) (metadata.MD, time.Duration, error) {
	md := metadata.MD{}
	var timeout time.Duration
	for _, f := range fields {
		switch {
		case f.IsPseudo():
		case f.Name == "grpc-timeout":
			d, err := decodeTimeout(f.Value)
			if err != nil {
				return nil, 0, err
			}
			timeout = d
		case reservedHeader(f.Name):
		case strings.HasSuffix(f.Name, "-bin"):
			v, err := decodeBinary(f.Value)
			if err != nil {
				return nil, 0, fmt.Errorf("metadata %s: %w", f.Name, err)
			}
			md[f.Name] = append(md[f.Name], string(v))
		default:
			md[f.Name] = append(md[f.Name], f.Value)
		}
	}
	return md, timeout, nil
}

// reservedHeader reports whether gRPC itself sets a header, which metadata
// cannot carry.
func reservedHeader(name string) bool {
	switch name {
	case "content-type", "user-agent", "te", "grpc-encoding", "grpc-accept-encoding", "grpc-message-type",
		"grpc-timeout", "grpc-status", "grpc-message", "grpc-status-details-bin":
		return true
	}
	return strings.HasPrefix(name, ":")
}

func decodeBinary(v string) ([]byte, error) {
	if len(v)%4 == 0 {
		return base64.StdEncoding.DecodeString(v)
	}
	return base64.RawStdEncoding.DecodeString(v)
}

// responseHeaders is header, the runtime's response headers, or gRPC's
// defaults when there are none.
func responseHeaders(header []hpack.HeaderField) []hpack.HeaderField {
	if header != nil {
		return header
	}
	return []hpack.HeaderField{{Name: ":status", Value: "200"}, {Name: "content-type", Value: "application/grpc"}}
}

// statusFields appends err's status (code, message, details) to fields as
// gRPC trailer fields.
func statusFields(fields []hpack.HeaderField, err error) []hpack.HeaderField {
	st := status.Convert(err)
	fields = append(fields, hpack.HeaderField{Name: "grpc-status", Value: strconv.Itoa(int(st.Code()))})
	if msg := st.Message(); msg != "" {
		fields = append(fields, hpack.HeaderField{Name: "grpc-message", Value: encodeMessage(msg)})
	}
	if p := st.Proto(); len(p.GetDetails()) > 0 {
		if b, err := proto.Marshal(p); err == nil {
			fields = append(fields, hpack.HeaderField{Name: "grpc-status-details-bin", Value: base64.RawStdEncoding.EncodeToString(b)})
		}
	}
	return fields
}

// statusCode is the code in a response's final header block.
func statusCode(fields []hpack.HeaderField) codes.Code {
	for _, f := range fields {
		if f.Name == "grpc-status" {
			if c, err := strconv.ParseUint(f.Value, 10, 32); err == nil {
				return codes.Code(c)
			}
		}
	}
	return codes.Unknown
}

// encodeMessage percent-encodes a grpc-message as the gRPC spec says.
func encodeMessage(msg string) string {
	var sb strings.Builder
	for i := 0; i < len(msg); {
		_, size := utf8.DecodeRuneInString(msg[i:])
		for _, b := range []byte(msg[i : i+size]) {
			if size == 1 && b >= ' ' && b <= '~' && b != '%' {
				sb.WriteByte(b)
			} else {
				fmt.Fprintf(&sb, "%%%02X", b)
			}
		}
		i += size
	}
	return sb.String()
}

var errTimeout = errors.New("malformed grpc-timeout")

// decodeTimeout parses a grpc-timeout: at most 8 digits and a unit.
func decodeTimeout(s string) (time.Duration, error) {
	if len(s) < 2 || len(s) > 9 {
		return 0, fmt.Errorf("%w: %q", errTimeout, s)
	}
	n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", errTimeout, s)
	}
	unit := map[byte]time.Duration{'H': time.Hour, 'M': time.Minute, 'S': time.Second, 'm': time.Millisecond, 'u': time.Microsecond, 'n': time.Nanosecond}[s[len(s)-1]]
	if unit == 0 {
		return 0, fmt.Errorf("%w: %q", errTimeout, s)
	}
	return time.Duration(n) * unit, nil
}

// upstreamRequest is the header block of a next call: the intercepted
// request's, its timeout that of ctx, without compression.
func upstreamRequest(ctx context.Context, fields []hpack.HeaderField) ([]hpack.HeaderField, error) {
	out := make([]hpack.HeaderField, 0, len(fields)+1)
	for _, f := range fields {
		switch f.Name {
		case "grpc-timeout", "grpc-encoding", "grpc-accept-encoding":
		default:
			out = append(out, f)
		}
	}
	if deadline, ok := ctx.Deadline(); ok {
		d := time.Until(deadline)
		if d <= 0 {
			return nil, status.Error(codes.DeadlineExceeded, context.DeadlineExceeded.Error())
		}
		out = append(out, hpack.HeaderField{Name: "grpc-timeout", Value: encodeTimeout(d)})
	}
	return out, nil
}

// encodeTimeout writes d as a grpc-timeout in the finest unit that fits
// eight digits, rounding up.
func encodeTimeout(d time.Duration) string {
	for _, u := range []struct {
		d    time.Duration
		name string
	}{{time.Nanosecond, "n"}, {time.Microsecond, "u"}, {time.Millisecond, "m"}, {time.Second, "S"}, {time.Minute, "M"}} {
		if n := (d + u.d - 1) / u.d; n <= 99999999 {
			return strconv.FormatInt(int64(n), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(min((d+time.Hour-1)/time.Hour, 99999999)), 10) + "H"
}

// unframeResponse returns the single uncompressed message of a response.
func unframeResponse(body []byte, maxMsgSize int) ([]byte, error) {
	if len(body) == 0 {
		return nil, status.Error(codes.Internal, "the runtime answered no message")
	}
	return unframe(body, maxMsgSize, "response")
}

// customFields drops what gRPC itself sets from a response's headers.
func customFields(fields []hpack.HeaderField) []hpack.HeaderField {
	var out []hpack.HeaderField
	for _, f := range fields {
		if !reservedHeader(f.Name) {
			out = append(out, f)
		}
	}
	return out
}

// statusFromFields is the status a response's final header block carries,
// nil for OK.
func statusFromFields(fields []hpack.HeaderField) error {
	code, msg, details := codes.Unknown, "", ""
	for _, f := range fields {
		switch f.Name {
		case "grpc-status":
			code = statusCode(fields)
		case "grpc-message":
			msg = decodeMessage(f.Value)
		case "grpc-status-details-bin":
			details = f.Value
		}
	}
	if code == codes.OK {
		return nil
	}
	if details != "" {
		if b, err := decodeBinary(details); err == nil {
			p := status.New(code, msg).Proto()
			if proto.Unmarshal(b, p) == nil && codes.Code(p.GetCode()) == code {
				return status.FromProto(p).Err()
			}
		}
	}
	return status.Error(code, msg)
}

// decodeMessage undoes encodeMessage.
func decodeMessage(msg string) string {
	if !strings.Contains(msg, "%") {
		return msg
	}
	var b []byte
	for i := 0; i < len(msg); i++ {
		if msg[i] == '%' && i+2 < len(msg) {
			if v, err := strconv.ParseUint(msg[i+1:i+3], 16, 8); err == nil {
				b = append(b, byte(v))
				i += 2
				continue
			}
		}
		b = append(b, msg[i])
	}
	return string(b)
}
