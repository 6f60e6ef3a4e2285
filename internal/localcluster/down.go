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
	unlock, err := o.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if owner, up := o.runningCluster(); up && owner != o.StateDir {
		return fmt.Errorf("the running cluster's state is in %s, not %s", owner, o.StateDir)
	}
	return o.down(ctx)
}

// leftovers reports whether a cluster, running or dead, left anything.
func (o *Options) leftovers() bool {
	if _, err := os.Stat(o.RunDir); err == nil {
		return true
	}
	for _, p := range []string{o.pidDir(), o.hostFile(), filepath.Join(o.StateDir, "nodes"), o.etcdDir()} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	for _, n := range o.nodes() {
		if _, err := os.Stat("/sys/class/net/" + n.Bridge); err == nil {
			return true
		}
		for _, h := range cgroupHierarchies() {
			if _, err := os.Stat(filepath.Join(h, n.CgroupRoot)); err == nil {
				return true
			}
		}
	}
	return len(o.ourProcesses()) > 0
}

func (o *Options) down(ctx context.Context) error {
	o.loadSaved()
	if !o.leftovers() {
		return nil
	}
	o.logf("tearing down the cluster in %s", o.StateDir)
	nodes := o.nodes()
	var wg sync.WaitGroup
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o.stopDaemon(n.Name+"-kubelet", 10*time.Second)
			if r := o.recorded(n.Name + "-containerd"); r != nil && r.alive() {
				// Through kubelet's endpoint, so a CRI proxy detaches its
				// networks; straight to containerd if that fails.
				if err := o.removeSandboxes(ctx, n, o.criEndpoint(n)); err != nil {
					o.logf("warning: %v", err)
					if err := o.removeSandboxes(ctx, n, "unix://"+n.ContainerdSocket()); err != nil {
						o.logf("warning: %v", err)
					}
				}
			}
			o.stopDaemon(n.Name+"-cri-proxy", 10*time.Second)
			o.stopDaemon(n.Name+"-containerd", 10*time.Second)
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		o.stopDaemon("kube-scheduler", 5*time.Second)
		o.stopDaemon("kube-controller-manager", 5*time.Second)
	}()
	wg.Wait()
	o.stopDaemon("kube-apiserver", 15*time.Second)
	o.stopDaemon("etcd", 5*time.Second)

	var errs []error
	if err := o.killAll(); err != nil {
		errs = append(errs, err)
	}
	if err := unmountAll(o.StateDir, o.RunDir); err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, o.deleteLinks(), o.removeCgroupRoots())
	restoreErr := o.restoreHost()
	if err := os.RemoveAll(o.RunDir); err != nil {
		errs = append(errs, err)
	}
	// Keep the record of the host's settings until they are restored, so
	// that the next Down can retry.
	keep := map[string]bool{"logs": true}
	if restoreErr != nil {
		errs = append(errs, restoreErr)
		keep[filepath.Base(o.hostFile())] = true
	}
	if err := o.removeState(keep); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func (o *Options) recorded(name string) *recorded {
	rs, _ := o.recordedDaemons()
	for _, r := range rs {
		if r.name == name {
			return &r
		}
	}
	return nil
}

// removeState empties the state dir but for the entries in keep (the logs,
// for a post-mortem).
func (o *Options) removeState(keep map[string]bool) error {
	ents, err := os.ReadDir(o.StateDir)
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
		if err := os.RemoveAll(filepath.Join(o.StateDir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
