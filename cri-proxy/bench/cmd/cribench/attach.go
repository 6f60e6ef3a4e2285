package main

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"k8s.io/klog/v2"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/attachment"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/catalog"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/cniexec"
)

// attachResult is the attach benchmark's medians and paired ratio.
type attachResult struct {
	sequential, parallel time.Duration
	paired               float64 // median of parallel/sequential per round
}

// compareAttach times RunPodSandbox's attach step, attachment.Manager.Attach
// called in-process (the daemon's code, not the daemon), for a pod asking
// for every network of h (real macvlan and host-local plugins, a real
// network namespace): one network after another (concurrency 1, the
// baseline) against all at once (concurrency numNetworks, the daemon's
// way), interleaved round by round. Each round's attachments are
// detached, untimed.
func compareAttach(ctx context.Context, o options, work string, h *hostNetworks) (attachResult, error) {
	netnsPath, err := h.addNetns("attach")
	if err != nil {
		return attachResult{}, err
	}
	defer ip("netns", "del", filepath.Base(netnsPath))
	var reqs []attachment.Request
	for i, n := range h.names {
		reqs = append(reqs, attachment.Request{Name: n, Interface: fmt.Sprintf("net%d", i+1)})
	}
	// The catalog logs through klog in this process: errors only.
	klog.LogToStderr(false)
	klog.SetOutput(io.Discard)
	// Plugins run as the daemon runs them by default (-plugin-gomaxprocs).
	plugins := cniexec.New(cniexec.Options{Env: cniexec.GOMAXPROCS(o.pluginGOMAXPROCS)})
	store, err := catalog.New(catalog.Config{Dir: h.dir, BinDirs: []string{o.cniBinDir}, Exec: plugins})
	if err != nil {
		return attachResult{}, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	store.Start(sctx)
	manager := func(name string, concurrency int) (*attachment.Manager, error) {
		dir := filepath.Join(work, "attach-"+name)
		return attachment.NewManager(store, attachment.Config{
			StateDir: filepath.Join(dir, "state"), CacheDir: filepath.Join(dir, "cache"),
			BinDirs: []string{o.cniBinDir}, Concurrency: concurrency, Timeout: 30 * time.Second, Exec: plugins,
			Runtime: noRuntime{}})
	}
	sequential, err := manager("sequential", 1)
	if err != nil {
		return attachResult{}, err
	}
	parallel, err := manager("parallel", numNetworks)
	if err != nil {
		return attachResult{}, err
	}
	round := func(m *attachment.Manager, id string) (time.Duration, error) {
		pod := attachment.PodRef{Namespace: "cribench", Name: id, UID: id, SandboxID: id}
		start := time.Now()
		atts, err := m.Attach(ctx, pod, netnsPath, reqs)
		d := time.Since(start)
		if err != nil {
			return 0, err
		}
		if len(atts) != len(reqs) {
			return 0, fmt.Errorf("%d attachments, want %d", len(atts), len(reqs))
		}
		return d, m.Detach(ctx, id)
	}
	var seq, par []time.Duration
	for i := range o.attachWarmup + o.attach {
		type side struct {
			m   *attachment.Manager
			out *[]time.Duration
		}
		order := [2]side{{sequential, &seq}, {parallel, &par}}
		if i%2 == 1 { // alternate which goes first
			order[0], order[1] = order[1], order[0]
		}
		for j, s := range order {
			d, err := round(s.m, fmt.Sprintf("%sattach%d-%d", h.tag, i, j))
			if err != nil {
				return attachResult{}, err
			}
			if i >= o.attachWarmup {
				*s.out = append(*s.out, d)
			}
		}
	}
	return attachResult{sequential: median(seq), parallel: median(par), paired: median(pairedRatios(par, seq))}, nil
}

// noRuntime is the runtime of the attach benchmark's managers: it never
// reconciles, so it never stops a sandbox.
type noRuntime struct{}

func (noRuntime) StopSandbox(context.Context, string) error { return nil }
