package localcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Down tears the cluster down and undoes what it changed on the host. With
// nothing running and nothing left over it does nothing and returns nil.
func Down(ctx context.Context, o Options) error {
	if err := o.Validate(); err != nil {
		return err
	}
	l := newLayout(o)
	unlock, err := l.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if owner, up := l.runningCluster(); up && owner != o.StateDir {
		return fmt.Errorf("the running cluster's state is in %s, not %s", owner, o.StateDir)
	}
	return down(ctx, l)
}

// leftovers reports whether a cluster, running or dead, left anything.
func (l layout) leftovers() bool {
	if _, err := os.Stat(l.opts.RunDir); err == nil {
		return true
	}
	for _, p := range []string{l.pidDir(), l.hostFile(), filepath.Join(l.opts.StateDir, "nodes"), l.etcdDir()} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	for _, n := range l.nodes {
		if _, err := os.Stat("/sys/class/net/" + n.Bridge); err == nil {
			return true
		}
		for _, h := range cgroupHierarchies() {
			if _, err := os.Stat(filepath.Join(h, n.CgroupRoot)); err == nil {
				return true
			}
		}
	}
	return len(l.ourProcesses()) > 0
}

// down stops the cluster of l's state dir (with the nodes it was brought up
// with) and restores the host.
func down(ctx context.Context, l layout) error {
	l = l.adoptSaved()
	if !l.leftovers() {
		return nil
	}
	l.opts.logf("tearing down the cluster in %s", l.opts.StateDir)
	run := newRunner(l)
	var wg sync.WaitGroup
	for _, n := range l.nodes {
		wg.Go(func() {
			run.stop(n.Name+"-kubelet", 10*time.Second)
			if r := run.recorded(n.Name + "-containerd"); r != nil && r.alive() {
				// Through kubelet's endpoint, so a CRI proxy detaches its
				// networks; straight to containerd if that fails.
				if err := removeSandboxes(ctx, n, n.CRIEndpoint); err != nil {
					l.opts.logf("warning: %v", err)
					if err := removeSandboxes(ctx, n, "unix://"+n.ContainerdSocket()); err != nil {
						l.opts.logf("warning: %v", err)
					}
				}
			}
			run.stop(n.Name+"-cri-proxy", 10*time.Second)
			run.stop(n.Name+"-containerd", 10*time.Second)
		})
	}
	wg.Go(func() {
		run.stop("kube-scheduler", 5*time.Second)
		run.stop("kube-controller-manager", 5*time.Second)
	})
	wg.Wait()
	run.stop("kube-apiserver", 15*time.Second)
	run.stop("etcd", 5*time.Second)

	// What follows has its own bounds and must finish even if ctx ended:
	// an interrupted teardown would leave processes and cgroups behind.
	ctx = context.WithoutCancel(ctx)
	var errs []error
	if err := l.killAll(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := unmountAll(l.opts.StateDir, l.opts.RunDir); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, l.deleteLinks(), l.removeCgroupRoots(ctx))
	restoreErr := l.restoreHost()
	if err := os.RemoveAll(l.opts.RunDir); err != nil {
		errs = append(errs, err)
	}
	// Keep the record of the host's settings until they are restored, so
	// that the next Down can retry.
	keep := map[string]bool{"logs": true}
	if restoreErr != nil {
		errs = append(errs, restoreErr)
		keep[filepath.Base(l.hostFile())] = true
	}
	if err := removeState(l.opts.StateDir, keep); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// removeState empties the state dir but for the entries in keep (the logs,
// for a post-mortem).
func removeState(dir string, keep map[string]bool) error {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range ents {
		if keep[e.Name()] {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
