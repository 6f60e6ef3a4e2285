package forward

import (
	"context"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
)

// DefaultMaxMsgSize is kubelet's CRI message size limit, 16 MiB.
const DefaultMaxMsgSize = 16 << 20

// UnaryHandler serves one intercepted unary method. req is the raw protobuf
// request; next forwards a (possibly modified) raw request upstream with
// the call's incoming metadata and returns the raw response; upstream
// response headers/trailers are passed through to the caller by the
// forwarder. An error returned by next is a gRPC status error from upstream
// (code, message, details preserved); returning it unchanged passes it
// through exactly. (next also fails with Unavailable when the runtime
// cannot be reached, and with Canceled or DeadlineExceeded when ctx ends.)
type UnaryHandler func(ctx context.Context, req []byte, next func(ctx context.Context, req []byte) ([]byte, error)) ([]byte, error)

// Options configure a Proxy.
type Options struct {
	// Upstream is the runtime's (containerd's) unix socket path.
	Upstream string
	// Conn, when set, is the connection to the runtime (see Dial), shared
	// with the caller; New dials Upstream otherwise.
	Conn *grpc.ClientConn
	// MaxMsgSize bounds the messages of intercepted calls: the client's
	// request and the runtime's answers to next (and those of RuntimeConn's
	// calls by default); DefaultMaxMsgSize when zero. Forwarded requests
	// are bounded by DefaultMaxMsgSize, kubelet's and containerd's limit
	// (or MaxMsgSize if larger); forwarded answers are not bounded by the
	// proxy: the client applies its own limit.
	MaxMsgSize int
	// Intercept holds the handlers of the intercepted methods, unary
	// ones, keyed by full method name, e.g.
	// "/runtime.v1.RuntimeService/RunPodSandbox". Every other method is
	// forwarded untouched.
	Intercept map[string]UnaryHandler
	// Observe, when set, is called once at the end of every call, forwarded
	// or intercepted, with its full method name, duration and status code,
	// just before the status is sent. It runs on the call's path and must
	// be cheap.
	Observe func(method string, d time.Duration, code codes.Code)
}
