package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
)

// Targets.
const (
	maxVsAnchor       = 1.03 // cri-proxy's median / the anchor's, every call
	maxListsVsDirect  = 1.20 // cri-proxy's median / direct, list calls
	goalListsVsDirect = 1.05
	maxRSS            = 40 << 20 // fresh cri-proxy after the pods benchmark
	maxAttach         = 0.70     // parallel / sequential attach
	goalAttach        = 0.60
)

// runClient is cribench without a role: it runs the benchmarks, cleans up,
// checks for leftovers and prints the report, partial if a benchmark
// failed.
func runClient(args []string, stdout io.Writer) (retErr error) {
	o, err := parseOptions(args)
	if err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return errors.New("needs root (network namespaces, links, CNI plugins)")
	}
	bins := []string{o.criProxy, o.anchor, filepath.Join(o.cniBinDir, "macvlan"), filepath.Join(o.cniBinDir, "host-local")}
	if o.candidates {
		bins = append(bins, o.h2)
	}
	for _, b := range bins {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%w (hack/bench-proxy.sh builds what cribench needs)", err)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := becomeSubreaper(); err != nil {
		return fmt.Errorf("become child subreaper: %w", err)
	}
	b := &bench{o: o, tag: runTag(), rep: &report{header: header(o)}}
	stale, err := sweepStale()
	if err != nil {
		return fmt.Errorf("remove leftovers of earlier runs: %w", err)
	}
	if stale > 0 {
		b.rep.notes = append(b.rep.notes, fmt.Sprintf("removed %d links, network namespaces and work dirs left by killed earlier runs", stale))
	}
	if b.work, err = os.MkdirTemp("", b.tag); err != nil {
		return err
	}
	defer os.RemoveAll(b.work)

	runErr := b.run(ctx)
	leftover := check{what: "leftover processes, links, netns after cleanup", got: "none", limit: "none", ok: true}
	if err := b.cleanup(); err != nil {
		leftover.got, leftover.ok = "see below", false
		b.rep.notes = append(b.rep.notes, "cleanup: "+err.Error())
	}
	b.rep.checks = append(b.rep.checks, leftover)
	b.rep.print(stdout)
	if runErr != nil {
		logs, _ := filepath.Glob(filepath.Join(b.work, "*.log"))
		for _, l := range logs {
			fmt.Fprintf(os.Stderr, "--- %s\n%s\n", filepath.Base(l), tail(l, 15))
		}
		return runErr
	}
	if o.strict && !b.rep.passed() {
		return errTargetsMissed
	}
	return nil
}

// bench is one run.
type bench struct {
	o             options
	tag           string // starts the name of every link and netns of the run
	work          string // the run's temporary dir
	h             *hostNetworks
	runtimeSocket string
	procs         []*process // every process started, to stop at the end
	rep           *report
}

// run sets up the networks and the fake runtime and runs the benchmarks.
func (b *bench) run(ctx context.Context) error {
	if err := stage(&b.o, b.work); err != nil {
		return fmt.Errorf("stage binaries: %w", err)
	}
	var err error
	if b.h, err = setupHostNetworks(b.work, b.tag); err != nil {
		return err
	}
	b.runtimeSocket = filepath.Join(b.work, "runtime.sock")
	rt, err := startRole(ctx, b.work, "runtime", b.runtimeSocket, "-socket", b.runtimeSocket,
		"-sandboxes", strconv.Itoa(b.o.sandboxes), "-containers", strconv.Itoa(b.o.containers))
	if err != nil {
		return err
	}
	b.procs = append(b.procs, rt)
	if err := b.measureLatency(ctx); err != nil {
		return fmt.Errorf("latency: %w", err)
	}
	// Attach before pods: the kernel tears the pods' 100 namespaces down
	// in the background, holding the RTNL lock that attaching needs.
	if b.o.attach > 0 {
		res, err := compareAttach(ctx, b.o, b.work, b.h)
		if err != nil {
			return fmt.Errorf("attach: %w", err)
		}
		b.rep.checks = append(b.rep.checks, ratioCheck(fmt.Sprintf("attach %d macvlan networks: parallel / sequential", numNetworks),
			ratio(res.parallel, res.sequential), maxAttach, goalAttach))
		b.rep.notes = append(b.rep.notes, fmt.Sprintf("attach: median sequential %s, parallel %s, paired ratio %.3f (%d rounds, in-process attachment.Manager; CPU-bound, ~0.55 is the floor on 2 cores)",
			us(res.sequential), us(res.parallel), res.paired, b.o.attach))
	}
	if b.o.pods > 0 {
		res, err := runPods(ctx, b.o, b.work, b.runtimeSocket, b.h)
		if res.after.rss > 0 { // the calls were made
			b.rep.checks = append(b.rep.checks, res.checks(maxRSS)...)
		}
		b.rep.notes = append(b.rep.notes,
			fmt.Sprintf("pods: %d concurrent RunPodSandbox through a fresh cri-proxy took %.1f s; %d failed %q; %d Stop/Remove failed %q",
				res.pods, res.took.Seconds(), res.pods-res.ok, res.failures, res.cleanupFailed, res.cleanupFails),
			"pods: fresh cri-proxy once serving: "+res.started.String(),
			"pods: fresh cri-proxy after the runs: "+res.after.String())
		if err != nil {
			return fmt.Errorf("pods: %w", err)
		}
	}
	return nil
}

// cleanup stops every process, deletes the run's links and namespaces,
// then checks that none of them, and no process, is left.
func (b *bench) cleanup() error {
	for _, p := range b.procs {
		p.stop()
	}
	var errs []error
	if b.h != nil {
		errs = append(errs, b.h.cleanup())
	}
	return errors.Join(append(errs, checkLeftovers(b.tag))...)
}

// measureLatency starts the proxies, measures every kubelet call through
// each and directly, and stops the proxies again (the runtime stays).
func (b *bench) measureLatency(ctx context.Context) error {
	o, work, runtimeSocket := b.o, b.work, b.runtimeSocket
	var started []*process
	defer func() {
		for _, p := range started {
			p.stop()
		}
	}()
	relay := func(name, bin string) (string, error) {
		socket := filepath.Join(work, name+".sock")
		p, err := start(ctx, work, name, socket, bin, "-listen", socket, "-upstream", runtimeSocket)
		if err == nil {
			started = append(started, p)
			b.procs = append(b.procs, p)
		}
		return socket, err
	}
	sockets := []string{runtimeSocket}
	s, err := relay("grpcpassthrough", o.anchor)
	if err != nil {
		return err
	}
	sockets = append(sockets, s)
	cp, err := startCRIProxy(ctx, o, work, "cri-proxy", runtimeSocket, b.h)
	if err != nil {
		return err
	}
	started = append(started, cp.process)
	b.procs = append(b.procs, cp.process)
	sockets = append(sockets, cp.socket)
	if o.candidates {
		if s, err = relay("h2relay", o.h2); err != nil {
			return err
		}
		sockets = append(sockets, s)
	}
	names := []string{"direct", "anchor: grpc-go pass-through", "cri-proxy", "candidate: x/net/http2 relay"}
	var paths []path
	for i, s := range sockets {
		c, err := dialKubeletLike(s)
		if err != nil {
			return err
		}
		defer c.Close()
		paths = append(paths, path{name: names[i], client: c, addsFields: i == 2})
	}
	if err := checkErrorsRelayed(ctx, paths); err != nil {
		return err
	}
	const anchor, criProxy = 1, 2
	for _, r := range kubeletRPCs(o) {
		s, err := measure(ctx, paths, r, o.warmup)
		if err != nil {
			return err
		}
		b.rep.latency = append(b.rep.latency, latencyRows(paths, s)...)
		direct, a, c := median(s.samples[0]), median(s.samples[anchor]), median(s.samples[criProxy])
		vsAnchor := ratioCheck(r.name+": cri-proxy / anchor", ratio(c, a), maxVsAnchor, 0)
		vsAnchor.got += fmt.Sprintf(" (paired %.3f)", median(pairedRatios(s.samples[criProxy], s.samples[anchor])))
		b.rep.checks = append(b.rep.checks, vsAnchor)
		if r.list {
			b.rep.checks = append(b.rep.checks, ratioCheck(r.name+": cri-proxy / direct", ratio(c, direct), maxListsVsDirect, goalListsVsDirect))
		}
	}
	mem, err := cp.memory()
	if err != nil {
		return err
	}
	n, err := cp.rpcsObserved()
	if err != nil {
		return fmt.Errorf("cri-proxy metrics: %w", err)
	}
	b.rep.notes = append(b.rep.notes, fmt.Sprintf("latency: cri-proxy's /metrics counted %d calls; after them: %s", n, mem))
	return nil
}

func header(o options) []string {
	h := []string{
		"cribench: kubelet's periodic CRI calls to a fake runtime, direct and through each proxy (separate processes)",
		"  cri-proxy: " + describeBinary(o.criProxy) + " (run from a hard link or copy in the work dir)",
		"  anchor:    grpc-go pass-through, UnknownServiceHandler + raw codec, default options but 16 MiB messages: " + o.anchor,
	}
	if o.candidates {
		h = append(h, "  candidate: x/net/http2 h2c relay (measured, not shipped): "+o.h2)
	}
	return append(h, fmt.Sprintf("  rounds: %d per small call, %d per list call, after %d untimed; a round calls each path once, in an order rotating each round; %d CPUs",
		o.small, o.lists, o.warmup, runtime.NumCPU()))
}
