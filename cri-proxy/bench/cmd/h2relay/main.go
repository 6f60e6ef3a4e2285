// Command h2relay is a measured candidate, not shipped: the CRI
// pass-through built on golang.org/x/net/http2 instead of grpc-go, the
// other maintained HTTP/2 stack considered for cri-proxy's forwarder.
// cribench measures it next to cri-proxy and the grpc-go anchor.
//
// An h2c (prior-knowledge HTTP/2 without TLS) http2.Server on a unix socket
// hands each request to a handler that relays it, as an HTTP/2 request,
// through an http2.Transport dialling the runtime's unix socket: headers
// (gRPC metadata, grpc-timeout, content-type) are copied, the request body
// is streamed upstream, and the response headers, body (flushed as it
// arrives, so streaming calls work) and trailers (grpc-status,
// grpc-message) are copied back. gRPC frames are never parsed. Options are
// the package defaults.
//
//	h2relay -listen PATH -upstream PATH
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/net/http2"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "h2relay: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "", "unix socket to serve on")
	upstream := flag.String("upstream", "", "the runtime's unix socket")
	flag.Parse()
	tr := &http2.Transport{
		AllowHTTP: true, // h2c: "http" URLs over the plain connection below
		DialTLSContext: func(ctx context.Context, _, _ string, _ *tls.Config) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", *upstream)
		},
	}
	defer tr.CloseIdleConnections()
	l, err := net.Listen("unix", *listen)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		l.Close()
	}()
	srv := &http2.Server{}
	opts := &http2.ServeConnOpts{Context: ctx, Handler: relay(tr)}
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		go srv.ServeConn(c, opts)
	}
}

var buffers = sync.Pool{New: func() any { return new([32 << 10]byte) }}

// relay forwards one gRPC call, unparsed.
func relay(tr *http2.Transport) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		out, err := http.NewRequestWithContext(r.Context(), r.Method, "http://"+r.Host+r.URL.RequestURI(), r.Body)
		if err != nil {
			grpcError(w, err)
			return
		}
		out.Header = r.Header.Clone()
		out.ContentLength = r.ContentLength
		resp, err := tr.RoundTrip(out)
		if err != nil {
			grpcError(w, err)
			return
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		flusher := w.(http.Flusher)
		buf := buffers.Get().(*[32 << 10]byte)
		defer buffers.Put(buf)
		for {
			n, err := resp.Body.Read(buf[:])
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				flusher.Flush()
			}
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return // the stream is reset: the client sees the failure
			}
		}
		for k, v := range resp.Trailer {
			w.Header()[http.TrailerPrefix+k] = v
		}
	}
}

// grpcError answers with a trailers-only gRPC error (UNAVAILABLE) when the
// upstream cannot be reached.
func grpcError(w http.ResponseWriter, err error) {
	w.Header().Set("Content-Type", "application/grpc")
	w.Header().Set("Grpc-Status", strconv.Itoa(14))
	w.Header().Set("Grpc-Message", err.Error())
	w.WriteHeader(http.StatusOK)
}
