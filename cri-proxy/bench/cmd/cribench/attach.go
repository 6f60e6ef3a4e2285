package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/attachment"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/catalog"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/cniexec"
)

// attachNetworks is how many networks the attach benchmark gives a pod.
const attachNetworks = 4

// compareAttach times RunPodSandbox's attach step, attachment.Manager.Attach,
// for a pod asking for four macvlan networks (real plugins, a real network
// namespace, a bridge master): one after another (concurrency 1, the
// baseline) against in parallel (concurrency 4, measured), interleaved
// round by round. Each round's attachments are detached, untimed.
func compareAttach(ctx context.Context, o options) (res result, retErr error) {
	if os.Geteuid() != 0 {
		return result{}, fmt.Errorf("needs root (network namespaces, links); run as root or pass -attach 0")
	}
	for _, p := range []string{"macvlan", "host-local"} {
		if _, err := os.Stat(filepath.Join(o.cniBinDir, p)); err != nil {
			return result{}, fmt.Errorf("CNI plugin %s: %w (make build, or -cni-bin-dir)", p, err)
		}
	}
	dir, err := os.MkdirTemp("", "cribench-attach-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	tag := fmt.Sprintf("cribench%d", os.Getpid()%100000)
	master, netns := tag, tag
	if err := ip("link", "add", master, "type", "bridge"); err != nil {
		return result{}, err
	}
	defer ip("link", "del", master)
	if err := ip("link", "set", master, "up"); err != nil {
		return result{}, err
	}
	if err := ip("netns", "add", netns); err != nil {
		return result{}, err
	}
	defer ip("netns", "del", netns)
	netnsPath := filepath.Join("/run/netns", netns)

	netDir, ipamDir := filepath.Join(dir, "networks"), filepath.Join(dir, "ipam")
	if err := os.Mkdir(netDir, 0o755); err != nil {
		return result{}, err
	}
	var reqs []attachment.Request
	for i := 1; i <= attachNetworks; i++ {
		name := fmt.Sprintf("mv%d", i)
		conf := fmt.Sprintf(`{"cniVersion": "1.0.0", "name": %q, "plugins": [
  {"type": "macvlan", "master": %q, "mode": "bridge",
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.254.%d.0/24"}]], "dataDir": %q}}]}`, name, master, i, ipamDir)
		if err := os.WriteFile(filepath.Join(netDir, name+".conflist"), []byte(conf), 0o644); err != nil {
			return result{}, err
		}
		reqs = append(reqs, attachment.Request{Name: name, Interface: fmt.Sprintf("net%d", i)})
	}
	// Plugins run as the daemon runs them by default (-plugin-gomaxprocs).
	plugins := cniexec.New(cniexec.Options{Env: cniexec.GOMAXPROCS(o.pluginGOMAXPROCS)})
	store, err := catalog.New(catalog.Config{Dir: netDir, BinDirs: []string{o.cniBinDir}, Exec: plugins})
	if err != nil {
		return result{}, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	store.Start(sctx)
	manager := func(name string, concurrency int) (*attachment.Manager, error) {
		return attachment.NewManager(store, attachment.Config{
			StateDir: filepath.Join(dir, name, "state"), CacheDir: filepath.Join(dir, name, "cache"),
			BinDirs: []string{o.cniBinDir}, Concurrency: concurrency, Timeout: 30 * time.Second, Exec: plugins})
	}
	sequential, err := manager("sequential", 1)
	if err != nil {
		return result{}, err
	}
	parallel, err := manager("parallel", attachNetworks)
	if err != nil {
		return result{}, err
	}
	round := func(m *attachment.Manager, id string) (time.Duration, error) {
		pod := attachment.PodRef{Namespace: "bench", Name: id, UID: id, SandboxID: id}
		start := time.Now()
		atts, err := m.Attach(ctx, pod, netnsPath, reqs)
		d := time.Since(start)
		if err != nil {
			return 0, err
		}
		if len(atts) != attachNetworks {
			return 0, fmt.Errorf("%d attachments, want %d", len(atts), attachNetworks)
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
		for _, s := range order {
			d, err := round(s.m, fmt.Sprintf("sb%d-%d", i, len(*s.out)))
			if err != nil {
				return result{}, err
			}
			if i >= o.attachWarmup {
				*s.out = append(*s.out, d)
			}
		}
	}
	ratios := make([]float64, len(par))
	for i := range par {
		ratios[i] = float64(par[i]) / float64(seq[i])
	}
	return result{
		name:     fmt.Sprintf("attach %d macvlan networks: sequential (baseline) vs parallel", attachNetworks),
		baseline: median(seq),
		measured: median(par),
		paired:   median(ratios),
		target:   ratioAtMost(0.6),
	}, nil
}

func ip(args ...string) error {
	if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}
