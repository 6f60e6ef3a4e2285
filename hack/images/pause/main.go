// Command pause is the init process of a pod sandbox.
//
// It holds the pod's namespaces alive by never exiting until the runtime
// stops it with SIGINT or SIGTERM, and because it runs as PID 1 the kernel
// reparents orphaned processes to it, so it must reap them or they stay
// zombies forever.
package main

import (
	"errors"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// Notify installs handlers, which PID 1 needs: the kernel drops signals
	// with the default disposition for init.
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every exited child. It loops because SIGCHLD coalesces:
// one signal may stand for many exits.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil || pid <= 0 {
			return
		}
	}
}
