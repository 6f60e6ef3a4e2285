package localcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	// Options are those the cluster was brought up with; read-only.
	Options
	// Timings lists bring-up milestones; the last is all nodes Ready.
	Timings []Timing

	l   layout
	run runner
}

func newCluster(o Options) *Cluster {
	l := newLayout(o)
	return &Cluster{Options: o, l: l, run: newRunner(l)}
}

// Up brings a cluster up and returns when every node is Ready. If a cluster
// is already up it changes nothing and returns an error wrapping ErrAlreadyUp.
// If any component fails, the error names it and its log, and everything
// started so far is torn down.
func Up(ctx context.Context, o Options) (_ *Cluster, retErr error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	c := newCluster(o)
	unlock, err := c.l.lock()
	if err != nil {
		return nil, err
	}
	defer unlock()
	if owner, up := c.l.runningCluster(); up {
		return nil, fmt.Errorf("%w (state: %s; run make down first)", ErrAlreadyUp, owner)
	}
	// Leftovers of a cluster that died without Down (a crash, a reboot).
	if err := down(ctx, c.l); err != nil {
		return nil, fmt.Errorf("clean up a previous cluster: %w", err)
	}
	if err := c.l.checkPorts(); err != nil {
		return nil, err
	}

	start := time.Now()
	var mu sync.Mutex
	mark := func(step string) {
		mu.Lock()
		defer mu.Unlock()
		c.Timings = append(c.Timings, Timing{step, time.Since(start)})
		o.logf("%6.2fs  %s", time.Since(start).Seconds(), step)
	}
	defer func() {
		if retErr != nil {
			o.logf("bring-up failed; tearing down the partial cluster")
			if err := down(context.WithoutCancel(ctx), c.l); err != nil {
				retErr = fmt.Errorf("%w; teardown of the partial cluster also failed: %v", retErr, err)
			} else {
				retErr = fmt.Errorf("%w (partial cluster torn down)", retErr)
			}
		}
	}()
	if err := c.prepare(mark); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, o.ReadyTimeout)
	defer cancel()
	if err := c.startComponents(ctx, mark); err != nil {
		return nil, err
	}
	cs, err := c.Client()
	if err != nil {
		return nil, err
	}
	if err := c.WaitNodesReady(ctx, cs); err != nil {
		return nil, err
	}
	mark("all nodes Ready")
	if err := waitDefaultServiceAccount(ctx, cs); err != nil {
		return nil, err
	}
	return c, nil
}

// prepare records the host's state and the cluster's, then writes every
// file the components read: certificates, kubeconfigs, configurations, and
// the nodes' cgroup roots.
func (c *Cluster) prepare(mark func(string)) error {
	l := c.l
	for _, d := range []string{l.opts.StateDir, l.pkiDir(), l.logDir(), l.pidDir(), l.configDir(), l.opts.RunDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	if err := l.recordHost(); err != nil {
		return fmt.Errorf("record host state: %w", err)
	}
	if err := l.save(); err != nil {
		return err
	}
	if err := os.WriteFile(l.ownerFile(), []byte(l.opts.StateDir+"\n"), 0o644); err != nil {
		return err
	}
	if err := l.writePKI(); err != nil {
		return fmt.Errorf("pki: %w", err)
	}
	mark("certificates written")
	if err := l.writeConfigs(); err != nil {
		return err
	}
	for _, n := range l.nodes {
		if err := createCgroupRoot(n.CgroupRoot); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
	}
	return nil
}

// startComponents starts the control plane and every node in parallel,
// each in its components' order, and returns once all are ready.
func (c *Cluster) startComponents(ctx context.Context, mark func(string)) error {
	g, ctx := errgroup.WithContext(ctx)
	apiReady := make(chan struct{})
	g.Go(func() error { return c.startAll(ctx, c.l.controlPlane(), apiReady, mark) })
	for _, n := range c.l.nodes {
		g.Go(func() error { return c.startAll(ctx, c.l.nodeComponents(n), apiReady, mark) })
	}
	return g.Wait()
}

// startAll starts components in order, each once the one before is ready.
// It closes apiReady when the apiserver is ready, and waits on it before a
// component that needs the apiserver.
func (c *Cluster) startAll(ctx context.Context, cs []component, apiReady chan struct{}, mark func(string)) error {
	for _, comp := range cs {
		if comp.needsAPI {
			select {
			case <-apiReady:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		p, err := c.run.start(comp.daemon)
		if err != nil {
			return err
		}
		if err := p.waitReady(ctx, comp.ready); err != nil {
			return err
		}
		if comp.then != nil {
			if err := comp.then(ctx); err != nil {
				return fmt.Errorf("%s: %w", comp.name, err)
			}
		}
		if comp.servesAPI {
			close(apiReady)
		}
		mark(comp.step)
	}
	return nil
}

// ReadyAfter is the time from the start of Up to all nodes Ready.
func (c *Cluster) ReadyAfter() time.Duration {
	if len(c.Timings) == 0 {
		return 0
	}
	return c.Timings[len(c.Timings)-1].Elapsed
}

// runningCluster reports whether any cluster's daemon is alive, and whose
// state dir it is. The owner file in RunDir names the state dir of the
// cluster that owns the host-wide ports and names.
func (l layout) runningCluster() (string, bool) {
	owner := l.opts.StateDir
	if b, err := os.ReadFile(l.ownerFile()); err == nil {
		owner = strings.TrimRight(string(b), "\r\n")
	}
	o := l.opts
	o.StateDir = owner
	return owner, newRunner(newLayout(o)).running()
}

// lock serialises Up and Down of one state dir; the owner file in RunDir
// guards against clusters of other state dirs.
func (l layout) lock() (func(), error) {
	if err := os.MkdirAll(filepath.Dir(l.opts.StateDir), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(l.lockFile(), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
