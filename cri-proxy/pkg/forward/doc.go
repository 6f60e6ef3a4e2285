// Package forward is the CRI proxy's transparent forwarder: it serves
// kubelet's CRI connection and passes every call to the runtime's
// (containerd's) unix socket untouched, unless the call's method is
// intercepted.
//
// Forwarded calls — every RuntimeService and ImageService method, unary or
// streaming, and methods unknown to the proxy — reach the runtime with
// their payload, request headers and metadata as the client sent them, and
// the client gets the runtime's payload, response headers, trailers and
// status (code, message, details) as the runtime sent them: the proxy never
// answers for the runtime, so kubelet still sees the runtime's
// Unimplemented for what it lacks. The proxy limits no message size of a
// forwarded call; the client and the runtime apply theirs.
//
// The proxy works on HTTP/2 frames, not gRPC messages: each client
// connection gets a runtime connection of its own, and a forwarded call's
// frames are passed on as they arrive, so that a large answer streams
// through the proxy instead of being received whole and sent again.
//
// An intercepted method (Options.Intercept) is a unary call the proxy
// answers itself: it collects the request (at most Options.MaxMsgSize),
// calls the method's UnaryHandler with the raw protobuf bytes and the
// request metadata in the context (and its deadline), and sends what the
// handler returns. The handler's next sends a request to the runtime on the
// same runtime connection, with the call's request headers, and returns the
// raw answer or the runtime's status error; the runtime's response headers
// and custom trailers of the last next call go back to the client with the
// handler's answer or error status.
//
// When the runtime cannot be reached, a call gets Unavailable and the client
// is sent away (GOAWAY) to reconnect, which dials the runtime again. When
// the runtime's connection is lost, the calls it had not finished fail with
// Unavailable and the client is sent away the same way. Stop ends every
// call in flight; the clients see Unavailable.
//
// Options.Observe is called once per call, forwarded or intercepted, when
// its status is known.
package forward
