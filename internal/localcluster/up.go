package localcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
)

// ErrAlreadyUp is returned by Up when a cluster is already running.
var ErrAlreadyUp = errors.New("a cluster is already up")

// Timing is one bring-up step and when it finished, from the start of Up.
type Timing struct {
	Step    string
	Elapsed time.Duration
}

// Cluster is a running cluster.
type Cluster struct {
	Options
	// Timings lists bring-up milestones; the last is all nodes Ready.
	Timings []Timing
}

// saved is what Down needs to find a cluster Up made with other options.
type saved struct {
	Nodes     int               `json:"nodes"`
	StateDir  string            `json:"stateDir"`
	BinDir    string            `json:"binDir"`
	Endpoints map[string]string `json:"criEndpoints"`
}

// Up brings a cluster up and returns when every node is Ready. If a cluster
// is already up it changes nothing and returns an error wrapping ErrAlreadyUp.
// If any component fails, the error names it and its log, and everything
// started so far is torn down.
func Up(ctx context.Context, o Options) (c *Cluster, retErr error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	unlock, err := o.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if owner, up := o.runningCluster(); up {
		return nil, fmt.Errorf("%w (state: %s; run make down first)", ErrAlreadyUp, owner)
	}
	// Leftovers of a cluster that died without Down (a crash, a reboot).
	stale := o // down adopts the dead cluster's saved node count
	if err := stale.down(ctx); err != nil {
		return nil, fmt.Errorf("clean up a previous cluster: %w", err)
	}

	if err := o.checkPorts(); err != nil {
		return nil, err
	}

	start := time.Now()
	c = &Cluster{Options: o}
	var mu sync.Mutex
	mark := func(step string) {
		mu.Lock()
		defer mu.Unlock()
		c.Timings = append(c.Timings, Timing{step, time.Since(start)})
		o.logf("%6.2fs  %s", time.Since(start).Seconds(), step)
	}

	for _, d := range []string{o.StateDir, o.pkiDir(), o.logDir(), o.pidDir(), filepath.Join(o.StateDir, "config"), o.RunDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := o.recordHost(); err != nil {
		return nil, fmt.Errorf("record host state: %w", err)
	}
	defer func() {
		if retErr != nil {
			o.logf("bring-up failed; tearing down the partial cluster")
			if err := o.down(context.WithoutCancel(ctx)); err != nil {
				retErr = fmt.Errorf("%w; teardown of the partial cluster also failed: %v", retErr, err)
			} else {
				retErr = fmt.Errorf("%w (partial cluster torn down)", retErr)
			}
		}
	}()
	if err := o.save(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(o.ownerFile(), []byte(o.StateDir+"\n"), 0o644); err != nil {
		return nil, err
	}
	if err := o.writePKI(); err != nil {
		return nil, fmt.Errorf("pki: %w", err)
	}
	mark("certificates written")

	ctx, cancel := context.WithTimeout(ctx, o.ReadyTimeout)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	apiReady := make(chan struct{})

	// Control plane: etcd, then apiserver, then controller-manager and scheduler.
	g.Go(func() error {
		etcd, err := o.startDaemon(o.etcdDaemon())
		if err != nil {
			return err
		}
		if err := etcd.waitReady(gctx, o.etcdHealthy); err != nil {
			return err
		}
		mark("etcd healthy")
		api, err := o.startDaemon(o.apiserverDaemon())
		if err != nil {
			return err
		}
		readyz, err := o.httpsGetter(o.APIServerURL()+"/readyz", "admin")
		if err != nil {
			return err
		}
		if err := api.waitReady(gctx, readyz); err != nil {
			return err
		}
		mark("kube-apiserver ready")
		if o.CRIProxy {
			cs, err := o.Client()
			if err != nil {
				return err
			}
			if err := grantProxies(gctx, cs); err != nil {
				return err
			}
		}
		close(apiReady)
		sched, err := o.schedulerDaemon()
		if err != nil {
			return err
		}
		for _, d := range []struct {
			d    daemon
			port int
		}{{o.controllerManagerDaemon(), o.ControllerManagerPort}, {sched, o.SchedulerPort}} {
			p, err := o.startDaemon(d.d)
			if err != nil {
				return err
			}
			healthz, _ := o.httpsGetter(fmt.Sprintf("https://127.0.0.1:%d/healthz", d.port), "")
			if err := p.waitReady(gctx, healthz); err != nil {
				return err
			}
			mark(d.d.name + " healthy")
		}
		return nil
	})
	// Nodes: containerd and images do not need the apiserver; kubelet does.
	for _, n := range o.nodes() {
		g.Go(func() error {
			if err := o.prepareNode(n); err != nil {
				return fmt.Errorf("%s: %w", n.Name, err)
			}
			ctrd, err := o.startDaemon(o.containerdDaemon(n))
			if err != nil {
				return err
			}
			if err := ctrd.waitReady(gctx, o.containerdReady(n)); err != nil {
				return err
			}
			if err := o.importImages(gctx, n); err != nil {
				return err
			}
			mark(n.Name + " containerd ready, images imported")
			if o.CRIProxy {
				proxy, err := o.startDaemon(o.proxyDaemon(n))
				if err != nil {
					return err
				}
				if err := proxy.waitReady(gctx, o.proxyHealthy(n)); err != nil {
					return err
				}
				mark(n.Name + " cri-proxy healthy")
			}
			select {
			case <-apiReady:
			case <-gctx.Done():
				return gctx.Err()
			}
			kubelet, err := o.startDaemon(o.kubeletDaemon(n))
			if err != nil {
				return err
			}
			if err := kubelet.waitReady(gctx, o.kubeletHealthy(n)); err != nil {
				return err
			}
			mark(n.Name + " kubelet healthy")
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	cs, err := o.Client()
	if err != nil {
		return nil, err
	}
	if err := o.WaitNodesReady(ctx, cs); err != nil {
		return nil, err
	}
	mark("all nodes Ready")
	if err := waitDefaultServiceAccount(ctx, cs); err != nil {
		return nil, err
	}
	return c, nil
}

// ReadyAfter is the time from the start of Up to all nodes Ready.
func (c *Cluster) ReadyAfter() time.Duration {
	if len(c.Timings) == 0 {
		return 0
	}
	return c.Timings[len(c.Timings)-1].Elapsed
}

func (o *Options) save() error {
	s := saved{Nodes: o.Nodes, StateDir: o.StateDir, BinDir: o.BinDir, Endpoints: map[string]string{}}
	for _, n := range o.nodes() {
		s.Endpoints[n.Name] = o.criEndpoint(n)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(o.StateDir, "cluster.json"), b, 0o644)
}

// loadSaved adopts the node count and CRI endpoints of the cluster Up made,
// so Down needs no options repeated.
func (o *Options) loadSaved() {
	b, err := os.ReadFile(filepath.Join(o.StateDir, "cluster.json"))
	if err != nil {
		return
	}
	var s saved
	if json.Unmarshal(b, &s) != nil || s.Nodes < 1 {
		return
	}
	o.Nodes = s.Nodes
	if len(s.Endpoints) > 0 {
		o.NodeCRIEndpoint = func(n Node, sock string) string {
			if e := s.Endpoints[n.Name]; e != "" {
				return e
			}
			return "unix://" + sock
		}
	}
}

// runningCluster reports whether any cluster's daemon is alive, and whose
// state dir it is. The owner file in RunDir names the state dir of the
// cluster that owns the host-wide ports and names.
func (o *Options) runningCluster() (string, bool) {
	owner := o.StateDir
	if b, err := os.ReadFile(o.ownerFile()); err == nil {
		owner = string(trimNL(b))
	}
	other := *o
	other.StateDir = owner
	rs, _ := other.recordedDaemons()
	for _, r := range rs {
		if r.alive() {
			return owner, true
		}
	}
	return owner, false
}

func trimNL(b []byte) []byte {
	for len(b) > 0 && (b[len(b)-1] == '\n' || b[len(b)-1] == '\r') {
		b = b[:len(b)-1]
	}
	return b
}

// lock serialises Up and Down of one state dir; the owner file in RunDir
// guards against clusters of other state dirs.
func (o *Options) lock() (func(), error) {
	if err := os.MkdirAll(filepath.Dir(o.StateDir), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(o.lockFile(), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
