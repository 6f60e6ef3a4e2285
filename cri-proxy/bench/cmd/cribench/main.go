// Command cribench measures what cri-proxy, as deployed, costs kubelet.
// It runs as root and starts, each as its own process:
//
//   - a fake CRI runtime (cribench re-executed with the role "runtime")
//     answering Version, Status, ListContainers (-containers, 1000) and
//     ListPodSandbox (-sandboxes, 200) with kubelet-shaped data encoded
//     anew for every call, and running sandboxes for RunPodSandbox (the
//     netns path comes back in verbose PodSandboxStatus where containerd
//     puts it);
//   - the real cri-proxy binary (-cri-proxy, _output/bin/cri-proxy) with
//     default flags except its sockets, a state dir, -cni-bin-dir, metrics
//     on a free local port, and a networks dir holding 4 real macvlan
//     network configs (cniVersion 1.1.0, host-local IPAM in a temporary
//     dataDir) on a bridge master link cribench creates;
//   - the anchor, cri-proxy/bench/cmd/grpcpassthrough: the grpc-go
//     pass-through a user would write instead (UnknownServiceHandler, raw
//     codec, grpc-go defaults but 16 MiB messages);
//   - unless -candidates=false, cri-proxy/bench/cmd/h2relay: a relay on
//     golang.org/x/net/http2, a candidate measured, not shipped.
//
// The measuring client is cribench itself, with kubelet's grpc-go client
// settings (16 MiB receive limit), one connection per path. It measures:
//
//  1. Latency. After checking that every proxy relays the runtime's error
//     status, and per call that it answers like the runtime (cri-proxy's
//     added Status field aside, the node's networks), -warmup untimed then
//     -small (Version, Status) or -lists (the lists) timed rounds; a round
//     makes one call on each path (direct, anchor, cri-proxy, candidate),
//     the order rotating every round so that machine noise hits all alike.
//     Printed: each path's median, its ratio to direct and the latency it
//     adds; targets: cri-proxy's median ≤ 1.03× the anchor's on every call
//     (the median of per-round ratios is shown too), and ≤ 1.20× direct on
//     the list calls (goal 1.05×).
//  2. Attach. attachment.Manager.Attach (the daemon's code, in-process) of
//     the 4 networks into one namespace, in parallel against one after the
//     other, -attach interleaved rounds. Target: median parallel/sequential
//     ≤ 0.70 (goal 0.60; it is CPU-bound, ~0.55 is the floor on 2 cores).
//  3. Memory. A freshly started second cri-proxy gets -pods (100)
//     concurrent RunPodSandbox calls, each for a pod asking for the 4
//     networks by the networking.x-k8s.io/networks annotation, in a network
//     namespace of its own that cribench created; the proxy runs the real
//     plugins. Target: all succeed, then its VmRSS < 40 MiB (VmHWM shown).
//     Every sandbox is then stopped and removed through the proxy, which
//     deletes its attachments; every host-local lease must be released.
//
// Finally every process is stopped and cribench checks that no process
// (it is a child subreaper: orphaned plugins count), link or network
// namespace of the run is left. Cleanup runs on failure and on SIGINT or
// SIGTERM too, and the report, partial then, is printed. The names of the
// run's links, namespaces and work dir start with crb<pid>-; those of
// earlier runs whose cribench was killed are removed at start. With
// -strict a missed target makes cribench exit non-zero.
//
//	cribench [-strict] [-candidates=false] [-small N] [-lists N] [-pods N] [-attach N] ...
//	cribench runtime -socket PATH    (role: the fake runtime)
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// maxMsgSize is kubelet's CRI message size limit.
const maxMsgSize = 16 << 20

// errTargetsMissed is run's answer under -strict when a target is missed.
var errTargetsMissed = errors.New("targets missed")

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintf(os.Stderr, "cribench: %v\n", err)
		os.Exit(1)
	}
}

// run dispatches on the role; without one it is the measuring client.
func run(args []string, stdout io.Writer) error {
	if len(args) > 0 && args[0] == "runtime" {
		return runRuntime(args[1:])
	}
	return runClient(args, stdout)
}
