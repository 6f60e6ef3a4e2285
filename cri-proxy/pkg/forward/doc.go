// Package forward is the CRI proxy's transparent forwarder: it serves
// kubelet's CRI connection and passes every call to the runtime's
// (containerd's) unix socket untouched, unless the call's method is
// intercepted.
//
// # Engine
//
// It is grpc-go on both sides: a grpc.Server that registers no service
// and serves every call with grpc.UnknownServiceHandler, and one
// grpc.ClientConn to the runtime (Dial; the daemon dials once and shares
// it, as Options.Conn, with its own typed CRI client). Messages are never decoded: a pass-through
// encoding.CodecV2 hands the transport's reference-counted receive buffers
// (mem.BufferSlice) from one side to the other without a copy. HTTP/2
// framing, flow control, header compression and limits are grpc-go's: one
// stream's unread answer holds only that stream's window, a refused answer
// returns its connection window, a cancel or deadline reaches the runtime
// as grpc-go's own client sends it, and decoded header lists are bounded
// (grpc-go's default, 16 MiB, as containerd's).
//
// # Forwarded calls
//
// Every method not intercepted is forwarded, known or not, unary or
// streaming: the CRI's unary methods as unary calls, everything else as a
// bidirectional stream that carries any kind of call. The runtime gets the
// request messages byte for byte, the client's metadata and its deadline;
// the client gets the answer messages byte for byte, and the runtime's
// response headers, trailers and status (code, message, details) as the
// runtime sent them. In particular:
//
//   - Request metadata: the client's, less what grpc-go sets itself —
//     pseudo-headers (:authority is "localhost", as kubelet sends), te,
//     content-type (the client's content-subtype is kept: kubelet's plain
//     "application/grpc" stays so), grpc-* (grpc-timeout is rewritten
//     from the deadline; grpc-accept-encoding would announce compressors
//     the proxy may lack) and user-agent: grpc-go sets user-agent per
//     connection, not per call, so the runtime sees the proxy's,
//     "cri-proxy grpc-go/<version>", and kubelet's is dropped.
//   - Status details: grpc-go decodes the runtime's
//     grpc-status-details-bin and would encode the details anew; the proxy
//     answers the status without its decoded details and with the
//     runtime's header as a trailer, which grpc-go's server then sends
//     byte for byte.
//   - Trailers-only answers stay trailers-only. grpc-go's client reports
//     one as nil header metadata (ClientStream.Header, grpc.Header),
//     while a real header always carries content-type; the proxy then
//     sends no header, and grpc-go's server answers a status with no
//     header sent or set as trailers-only (http2Server.writeStatus). A
//     header without custom metadata is sent as such.
//   - The proxy never answers for the runtime: kubelet sees the runtime's
//     own Unimplemented for what it lacks. (grpc-go alone answers a
//     malformed method name, as it would in the runtime.)
//   - A client's cancel, also after it half-closed a stream, cancels the
//     runtime's call; a deadline travels as grpc-timeout.
//   - Compression is not passed through: messages reach the runtime
//     uncompressed (kubelet compresses none; grpc-go's server handles a
//     compressed request as it would in the runtime, with the compressors
//     the daemon links).
//
// Message sizes: requests up to 16 MiB (DefaultMaxMsgSize, kubelet's
// limit and containerd's default, so a larger one is refused with the
// runtime's words), or MaxMsgSize if larger. Forwarded answers are not
// limited by the proxy (each message is held whole while it passes): the
// client applies its own limit, and refusing an answer does not harm its
// connection.
//
// # Intercepted calls
//
// An intercepted method (Options.Intercept) is a unary call the proxy
// answers itself: it collects the request (at most Options.MaxMsgSize),
// calls the method's UnaryHandler with the raw protobuf bytes and
// metadata.NewIncomingContext(ctx, md) — md the metadata forwarded calls
// send, ctx the call's, with its deadline — and answers what the handler
// returns. The handler's next sends a (possibly modified) raw request to
// the runtime with that metadata and returns the raw answer (at most
// MaxMsgSize) or the runtime's status error unchanged, so that returning
// it passes code, message and details through. The runtime's response
// headers (only if it sent some) and custom trailers of the last next call
// go back to the client with the handler's answer or error.
//
// # The runtime's connection
//
// When the runtime cannot be reached, calls fail Unavailable at once
// (fail-fast: no call waits for it), and calls in flight when it goes away
// fail Unavailable. The connection retries with a backoff of at most about
// a second, so calls succeed again within two seconds of the runtime
// listening again; clients keep their connection to the proxy throughout.
//
// # Lifecycle and observation
//
// Stop ends every call in flight (the clients see Unavailable, the
// runtime's calls are cancelled); Shutdown lets them finish until its
// context ends, then stops likewise. Both return once every handler has
// returned, so an intercepted handler's rollback is never cut off. Close
// then closes the runtime's connection if New dialled it.
//
// Options.Observe is called exactly once per call, forwarded or
// intercepted, with its method, duration and final code, just before the
// status is sent to the client.
//
// # Performance
//
// The proxy sits on kubelet's hot path (ListPodSandbox and ListContainers
// every second, Status every 5 s). Unary calls take no goroutine beyond
// grpc-go's own per call and reuse pooled per-call state; both sides use
// larger flow-control windows and read/write buffers than grpc-go's
// defaults (see proxy.go) so that lists of about 1 MiB pass without
// waiting for window updates and with fewer system calls. BenchmarkForward
// compares direct calls, calls through the proxy and through a plain
// grpc-go pass-through.
package forward
