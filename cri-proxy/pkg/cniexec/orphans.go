package cniexec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"syscall"
	"time"

	"github.com/prometheus/procfs"
	"k8s.io/apimachinery/pkg/util/wait"
)

// KillOrphans kills every process whose environment marks it as a plugin
// (or a plugin's child) of instance, and waits until they are gone or ctx
// ends. A proxy calls it at start, before it deletes anything: a plugin of
// the killed proxy that is still running could otherwise finish an ADD
// after the new proxy's DEL and leak what it added. It returns the pids it
// killed.
func KillOrphans(ctx context.Context, instance string) ([]int, error) {
	if instance == "" {
		return nil, errors.New("no instance")
	}
	marker := InstanceEnv + "=" + instance
	procs, err := procfs.AllProcs()
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	self := os.Getpid()
	var killed []int
	for _, p := range procs {
		if p.PID == self {
			continue
		}
		env, err := p.Environ()
		if err != nil || !slices.Contains(env, marker) {
			continue // gone already, or not ours
		}
		if err := syscall.Kill(p.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return killed, fmt.Errorf("kill orphaned plugin %d: %w", p.PID, err)
		}
		killed = append(killed, p.PID)
	}
	err = wait.PollUntilContextCancel(ctx, 10*time.Millisecond, true, func(context.Context) (bool, error) {
		for _, pid := range killed {
			if running(pid) {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		return killed, fmt.Errorf("orphaned plugins %v still running: %w", killed, err)
	}
	return killed, nil
}

// running tells whether pid exists and is not a zombie.
func running(pid int) bool {
	p, err := procfs.NewProc(pid)
	if err != nil {
		return false
	}
	st, err := p.Stat()
	return err == nil && st.State != "Z" && st.State != "X"
}
