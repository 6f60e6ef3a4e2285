package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// podsResult is what the pods benchmark saw.
type podsResult struct {
	pods, ok      int
	failures      []string // the first errors' first lines
	took          time.Duration
	started       memory   // the fresh proxy's memory once it serves
	after         memory   // and after the runs
	leasesHeld    int      // host-local leases after the runs
	leasesLeft    int      // after Stop and Remove
	cleanupFails  []string // the first Stop/Remove errors
	cleanupFailed int
}

// runPods starts a fresh cri-proxy and makes o.pods concurrent
// RunPodSandbox calls through it, each for a pod asking for every network
// of h in its own new network namespace; the proxy attaches them with the
// real plugins. It then reads the proxy's memory and host-local's leases,
// and stops and removes every sandbox through the proxy (which deletes the
// attachments), then checks that no lease is left and deletes the
// namespaces.
func runPods(ctx context.Context, o options, work, runtimeSocket string, h *hostNetworks) (res podsResult, retErr error) {
	res.pods = o.pods
	proxy, err := startCRIProxy(ctx, o, work, "cri-proxy-fresh", runtimeSocket, h)
	if err != nil {
		return res, err
	}
	defer proxy.stop()
	if res.started, err = proxy.memory(); err != nil {
		return res, err
	}
	c, err := dialKubeletLike(proxy.socket)
	if err != nil {
		return res, err
	}
	defer c.Close()

	netns := make([]string, o.pods)
	defer func() { // on success too: the namespaces go with the sandboxes
		for _, ns := range netns {
			if ns != "" {
				if err := ip("netns", "del", ns[strings.LastIndexByte(ns, '/')+1:]); err != nil {
					retErr = errors.Join(retErr, err)
				}
			}
		}
	}()
	for i := range netns {
		if netns[i], err = h.addNetns(fmt.Sprintf("sb%d", i)); err != nil {
			return res, err
		}
	}

	errs := make([]error, o.pods)
	cctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	start := time.Now()
	for i := range o.pods {
		wg.Go(func() {
			_, errs[i] = c.RunPodSandbox(cctx, &runtimeapi.RunPodSandboxRequest{Config: podConfig(h, i, netns[i])})
		})
	}
	wg.Wait()
	res.took = time.Since(start)
	for i, err := range errs {
		if err == nil {
			res.ok++
		} else if len(res.failures) < 2 {
			res.failures = append(res.failures, fmt.Sprintf("pod %d: %s", i, oneLine(err, 400)))
		}
	}
	if res.after, err = proxy.memory(); err != nil {
		return res, err
	}
	if res.leasesHeld, err = countLeases(h); err != nil {
		return res, err
	}

	// Stop and remove even when interrupted: the proxy deletes the
	// attachments then.
	dctx, dcancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer dcancel()
	var mu sync.Mutex
	for i := range o.pods {
		// Every pod, by the id the fake runtime gives it: a call cut short
		// may have made a sandbox all the same.
		id := sandboxID(podConfig(h, i, "").GetMetadata())
		wg.Go(func() {
			_, err := c.StopPodSandbox(dctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
			if err == nil {
				_, err = c.RemovePodSandbox(dctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id})
			}
			if err != nil {
				mu.Lock()
				if len(res.cleanupFails) < 2 {
					res.cleanupFails = append(res.cleanupFails, fmt.Sprintf("sandbox %s: %v", id, err))
				}
				res.cleanupFailed++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if res.leasesLeft, err = countLeases(h); err != nil {
		return res, err
	}
	return res, ctx.Err()
}

// podConfig is the sandbox config kubelet would send for pod i, asking for
// every network by annotation; netnsAnnotation tells the fake runtime the
// pod's namespace.
func podConfig(h *hostNetworks, i int, netns string) *runtimeapi.PodSandboxConfig {
	name, uid := fmt.Sprintf("bench-%03d", i), fmt.Sprintf("%spod%03d", h.tag, i)
	return &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: name, Namespace: "cribench", Uid: uid, Attempt: 0},
		Hostname: name,
		Labels: map[string]string{
			"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": "cribench", "io.kubernetes.pod.uid": uid,
		},
		Annotations: map[string]string{
			netrequest.AnnotationKey: strings.Join(h.names, ","),
			netnsAnnotation:          netns,
		},
		Linux: &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_POD},
		}},
	}
}

func countLeases(h *hostNetworks) (int, error) {
	held, err := h.leases()
	n := 0
	for _, c := range held {
		n += c
	}
	return n, err
}

// checks turns the result into targets.
func (r podsResult) checks(maxRSS int64) []check {
	want := r.pods * numNetworks
	return []check{
		{what: fmt.Sprintf("RunPodSandbox ×%d concurrent (%d networks each): succeeded", r.pods, numNetworks),
			got: fmt.Sprintf("%d/%d", r.ok, r.pods), limit: "all", ok: r.ok == r.pods},
		{what: "fresh cri-proxy VmRSS after them",
			got: mib(r.after.rss), limit: "< " + mib(maxRSS), ok: r.after.rss < maxRSS},
		{what: "host-local leases: held after the runs, left after Stop+Remove",
			got: fmt.Sprintf("%d/%d, %d", r.leasesHeld, want, r.leasesLeft), limit: fmt.Sprintf("%d, 0", want),
			ok: r.leasesHeld == want && r.leasesLeft == 0 && r.cleanupFailed == 0},
	}
}

// oneLine is err's text on one line, at most max bytes.
func oneLine(err error, max int) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}
