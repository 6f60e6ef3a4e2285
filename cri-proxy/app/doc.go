// Package app is the cri-proxy daemon: flags, wiring of the forwarder, the
// network store, the attach engine, the reconciler, the publishers and the
// metrics endpoint. Run is what tests call; Main wires it to the process.
//
// Log verbosity: 0 errors, network changes and published annotations; 2
// attach/detach per sandbox and every non-periodic CRI call; 6 the calls
// kubelet makes every few seconds (List*, Status, Version, stats).
package app
