package localcluster

// Faults injected into a running cluster; NodeState (nodestate.go) counts
// what a fault may have left on the host.

import (
	"context"
	"fmt"
	"net"
	"time"

	"sigs.k8s.io/pod-networks/internal/poll"
)

// faultTimeout bounds each fault operation unless ctx ends sooner.
const faultTimeout = 60 * time.Second

// KillProxy SIGKILLs the node's CRI proxy by its recorded pid, as a crash
// would, and returns once the process is gone and its socket and metrics
// port refuse connections. The proxy's socket file and state stay as the
// crash left them; StartProxy starts it again.
func (c *Cluster) KillProxy(node string) error {
	n, err := c.l.node(node)
	if err != nil {
		return err
	}
	if !n.CRIProxy {
		return fmt.Errorf("%s: the node runs no CRI proxy", n.Name)
	}
	if err := c.run.kill(n.Name + "-cri-proxy"); err != nil {
		return err
	}
	for _, addr := range [][2]string{{"unix", n.ProxySocket()}, {"tcp", fmt.Sprintf("127.0.0.1:%d", n.ProxyPort)}} {
		err := poll.Until(context.Background(), 5*time.Millisecond, 10*time.Second, func(context.Context) error {
			conn, err := net.DialTimeout(addr[0], addr[1], time.Second)
			if err != nil {
				return nil
			}
			conn.Close()
			return fmt.Errorf("%s still accepts connections", addr[1])
		})
		if err != nil {
			return fmt.Errorf("%s-cri-proxy killed: %w", n.Name, err)
		}
	}
	return nil
}

// StartProxy starts the node's CRI proxy again with the arguments Up gave
// it, appending to its log, and waits until its /healthz answers (it serves
// and reaches containerd). It fails if the proxy is running.
func (c *Cluster) StartProxy(ctx context.Context, node string) error {
	n, err := c.l.node(node)
	if err != nil {
		return err
	}
	if !n.CRIProxy {
		return fmt.Errorf("%s: the node runs no CRI proxy", n.Name)
	}
	d := c.l.criProxy(n)
	if r := c.run.recorded(d.name); r != nil && r.alive() {
		return fmt.Errorf("%s is running (pid %d)", d.name, r.pid)
	}
	ctx, cancel := context.WithTimeout(ctx, faultTimeout)
	defer cancel()
	d.restart = true
	p, err := c.run.start(d)
	if err != nil {
		return err
	}
	return p.waitReady(ctx, c.l.proxyHealthy(n))
}

// RestartContainerd stops the node's containerd (SIGTERM, SIGKILL after a
// grace period), starts it again with the same arguments, appending to its
// log, and waits until its CRI plugin reports the runtime and the network
// ready, and kubelet's CRI endpoint (the proxy, when there is one) answers
// too. The pods' shims and containers keep running meanwhile.
func (c *Cluster) RestartContainerd(ctx context.Context, node string) error {
	n, err := c.l.node(node)
	if err != nil {
		return err
	}
	d := c.l.containerd(n)
	r := c.run.recorded(d.name)
	if r == nil || !r.alive() {
		return fmt.Errorf("%s is not running", d.name)
	}
	ctx, cancel := context.WithTimeout(ctx, faultTimeout)
	defer cancel()
	// stop returns once its files (the metadata database's lock, the
	// sockets) are closed.
	c.run.stop(d.name, 10*time.Second)
	if !exited(r.pid, r.start) {
		return fmt.Errorf("%s: pid %d still running after SIGKILL", d.name, r.pid)
	}
	d.restart = true
	p, err := c.run.start(d)
	if err != nil {
		return err
	}
	ready := c.l.containerdReady(n)
	return p.waitReady(ctx, func(ctx context.Context) error {
		if err := ready(ctx); err != nil {
			return err
		}
		if err := criReady(ctx, "unix://"+n.ContainerdSocket()); err != nil {
			return fmt.Errorf("containerd: %w", err)
		}
		if n.CRIEndpoint != "unix://"+n.ContainerdSocket() {
			if err := criReady(ctx, n.CRIEndpoint); err != nil {
				return fmt.Errorf("kubelet's endpoint %s: %w", n.CRIEndpoint, err)
			}
		}
		return nil
	})
}
