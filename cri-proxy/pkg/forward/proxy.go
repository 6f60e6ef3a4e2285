package forward

import (
	"context"
	"errors"
	"net"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

const (
	// userAgent prefixes grpc-go's own in the runtime's view of the proxy's
	// calls: grpc-go sets user-agent per connection, not per call.
	userAgent = "cri-proxy"
	// windowSize is the HTTP/2 flow-control window the proxy grants per
	// stream, on both sides: an answer of up to this size (a list of a
	// thousand containers is about 1 MiB) flows in without waiting for
	// window updates. connWindowSize is the connection's, for several such
	// answers at once. Static windows also turn off grpc-go's BDP
	// estimation and its pings (measured: about 7% off a small call, 5%
	// off a 100 KiB list).
	windowSize     = 4 << 20
	connWindowSize = 16 << 20
	// bufferSize is the read and write buffer of every connection: fewer
	// system calls for large lists (measured: 256 KiB beats 32 KiB, grpc-go's
	// default, and 64 KiB; 1 MiB is no better).
	bufferSize = 256 << 10
	// streamWorkers serve calls on goroutines kept between calls, whose
	// stacks have grown already, instead of a new goroutine per call
	// (measured: about 8% off a small call through the proxy). A call
	// finding them all busy gets a goroutine of its own.
	streamWorkers = 16
	// maxReconnectDelay bounds the wait between attempts to reach a runtime
	// that is down (1.2 s with the backoff's jitter), so calls succeed again
	// within two seconds of it listening. Calls do not wait meanwhile: they
	// are fail-fast (grpc-go's default, no WaitForReady), and fail
	// Unavailable at once while the connection is in transient failure.
	maxReconnectDelay = time.Second
)

// Proxy forwards CRI calls between clients (kubelet) and the runtime.
type Proxy struct {
	opts    Options
	srv     *grpc.Server
	conn    *grpc.ClientConn
	ownConn bool // New dialled conn: Close closes it
	// maxRequest is the server's request size limit: kubelet's 16 MiB, or
	// MaxMsgSize if larger (intercepted requests are then checked against
	// MaxMsgSize by the proxy).
	maxRequest int
}

// New returns a Proxy for o. It connects to the runtime when the first call
// needs it.
func New(o Options) (*Proxy, error) {
	if o.Upstream == "" && o.Conn == nil {
		return nil, errors.New("no upstream socket")
	}
	if o.MaxMsgSize <= 0 {
		o.MaxMsgSize = DefaultMaxMsgSize
	}
	p := &Proxy{opts: o, maxRequest: max(DefaultMaxMsgSize, o.MaxMsgSize), conn: o.Conn}
	if p.conn == nil {
		conn, err := Dial(o.Upstream, o.MaxMsgSize)
		if err != nil {
			return nil, err
		}
		p.conn, p.ownConn = conn, true
	}
	p.srv = grpc.NewServer(
		grpc.UnknownServiceHandler(p.handle),
		grpc.ForceServerCodecV2(codec{}),
		grpc.MaxRecvMsgSize(p.maxRequest),
		grpc.WaitForHandlers(true),
		grpc.InitialWindowSize(windowSize),
		grpc.InitialConnWindowSize(connWindowSize),
		grpc.ReadBufferSize(bufferSize),
		grpc.WriteBufferSize(bufferSize),
		grpc.NumStreamWorkers(streamWorkers),
	)
	return p, nil
}

// Serve serves clients connecting to l until Stop, Shutdown or an accept
// error; it returns nil after Stop or Shutdown.
func (p *Proxy) Serve(l net.Listener) error {
	err := p.srv.Serve(l)
	if errors.Is(err, grpc.ErrServerStopped) {
		return nil
	}
	return err
}

// Stop closes the listeners and every client connection: calls in flight
// end (their clients see Unavailable, the runtime sees them cancelled). It
// returns once every handler has returned.
func (p *Proxy) Stop() {
	p.srv.Stop()
}

// Shutdown stops accepting, lets calls in flight finish until ctx ends,
// then stops like Stop. It returns once every intercepted handler has
// returned (grpc.WaitForHandlers(true)), so a handler's rollback is never
// cut off by process exit.
func (p *Proxy) Shutdown(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		p.srv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		p.srv.Stop() // cancels the calls left; GracefulStop returns too
		<-done
	}
}

// RuntimeConn is the proxy's connection to the runtime, for the daemon's
// own typed CRI client. Its default call options accept answers up to
// MaxMsgSize (16 MiB, kubelet's limit; gRPC's default of 4 MiB would break
// large lists).
func (p *Proxy) RuntimeConn() *grpc.ClientConn {
	return p.conn
}

// Close closes the runtime connection if New dialled it (after Stop or
// Shutdown).
func (p *Proxy) Close() error {
	if !p.ownConn {
		return nil
	}
	return p.conn.Close()
}

// Dial returns a connection to the runtime's unix socket as the proxy makes
// it: tuned windows and buffers, reconnects within a second of the runtime
// listening again, fail-fast calls, and answers of up to maxMsgSize
// (DefaultMaxMsgSize when zero) for typed calls. A daemon dials once and
// shares it (Options.Conn) between the proxy and its own CRI client.
func Dial(upstream string, maxMsgSize int) (*grpc.ClientConn, error) {
	if upstream == "" {
		return nil, errors.New("no upstream socket")
	}
	if maxMsgSize <= 0 {
		maxMsgSize = DefaultMaxMsgSize
	}
	return grpc.NewClient("passthrough:///localhost",
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		// The socket path is dialled as is: no URL parsing, no HTTP proxy.
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", upstream)
		}),
		grpc.WithAuthority("localhost"), // as kubelet's CRI client
		grpc.WithUserAgent(userAgent),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  100 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   maxReconnectDelay,
			},
			MinConnectTimeout: 5 * time.Second,
		}),
		grpc.WithInitialWindowSize(windowSize),
		grpc.WithInitialConnWindowSize(connWindowSize),
		grpc.WithReadBufferSize(bufferSize),
		grpc.WithWriteBufferSize(bufferSize),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize)),
	)
}

// handle serves every call: the proxy registers no service of its own, so
// that each method, known or not, reaches the runtime.
func (p *Proxy) handle(_ any, ss grpc.ServerStream) (err error) {
	method, _ := grpc.MethodFromServerStream(ss)
	if p.opts.Observe != nil {
		// Observe runs before the status is sent: once the client has the
		// answer, the call is observed.
		start := time.Now()
		defer func() { p.opts.Observe(method, time.Since(start), codeOf(err)) }()
	}
	if h := p.opts.Intercept[method]; h != nil {
		return p.intercept(ss, method, h)
	}
	if unaryMethods[method] {
		return p.forwardUnary(ss, method)
	}
	return p.forwardStream(ss, method)
}

// codeOf is the code grpc-go sends for a handler's error.
func codeOf(err error) codes.Code {
	if err == nil {
		return codes.OK
	}
	if st, ok := status.FromError(err); ok {
		return st.Code()
	}
	return status.FromContextError(err).Code()
}
