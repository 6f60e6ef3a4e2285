package forward

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
)

const (
	// windowSize is the flow-control window the proxy grants each peer,
	// per stream and per connection: what it may hold of one connection's
	// data while the other side is slow to take it.
	windowSize = 16 << 20
	// dialTimeout bounds connecting to the runtime's socket.
	dialTimeout = 5 * time.Second
)

// Proxy forwards CRI calls between clients (kubelet) and the runtime.
type Proxy struct {
	opts Options

	mu        sync.Mutex
	stopped   bool
	listeners map[net.Listener]struct{}
	pairs     map[*pair]struct{}
}

// New returns a Proxy for o. It connects to the runtime only when a client
// connects.
func New(o Options) (*Proxy, error) {
	if o.Upstream == "" {
		return nil, errors.New("no upstream socket")
	}
	if o.MaxMsgSize <= 0 {
		o.MaxMsgSize = DefaultMaxMsgSize
	}
	return &Proxy{opts: o, listeners: map[net.Listener]struct{}{}, pairs: map[*pair]struct{}{}}, nil
}

// Serve serves clients connecting to l until Stop or an accept error; it
// returns nil after Stop.
func (p *Proxy) Serve(l net.Listener) error {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		l.Close()
		return nil
	}
	p.listeners[l] = struct{}{}
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.listeners, l)
		p.mu.Unlock()
	}()
	for {
		c, err := l.Accept()
		if err != nil {
			p.mu.Lock()
			stopped := p.stopped
			p.mu.Unlock()
			if stopped {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		go p.serveConn(c)
	}
}

// Stop closes the listeners and every connection: calls in flight end, the
// clients see them fail as Unavailable.
func (p *Proxy) Stop() {
	p.mu.Lock()
	p.stopped = true
	for l := range p.listeners {
		l.Close()
	}
	pairs := make([]*pair, 0, len(p.pairs))
	for pr := range p.pairs {
		pairs = append(pairs, pr)
	}
	p.mu.Unlock()
	for _, pr := range pairs {
		pr.close(codes.Unavailable)
	}
}

// track registers a connection pair; false once stopped.
func (p *Proxy) track(pr *pair) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped {
		return false
	}
	p.pairs[pr] = struct{}{}
	return true
}

func (p *Proxy) untrack(pr *pair) {
	p.mu.Lock()
	delete(p.pairs, pr)
	p.mu.Unlock()
}
