// Command cribench measures what the CRI proxy (package forward) adds to the
// calls kubelet makes every second: it starts a fake runtime and the proxy
// as separate processes (itself, re-executed with the role as first
// argument), calls both with a kubelet-like client, direct and proxied
// calls interleaved so that machine noise hits both alike, and prints each
// median, their ratio and whether the target is met, then the proxy's
// resident memory. With -strict it exits non-zero when a target is missed.
//
//	cribench [-strict] [-small N] [-lists N] [-warmup N]
//	cribench runtime -socket PATH    (role: the fake runtime)
//	cribench proxy -listen PATH -upstream PATH    (role: the proxy)
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
	if len(args) > 0 {
		switch args[0] {
		case "runtime":
			return runRuntime(args[1:])
		case "proxy":
			return runProxy(args[1:])
		}
	}
	return runClient(args, stdout)
}
