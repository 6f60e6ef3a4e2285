package localcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// daemon is a long-running cluster process: it outlives the command that
// started it, so it is tracked by a pid file holding its pid and start time.
type daemon struct {
	name string // component, also the log and pid file name
	path string
	args []string
	env  []string
	// restart appends to the log (kept across a restart: the post-mortem of
	// a fault test needs both lives) instead of truncating it.
	restart bool
}

// proc is a started daemon.
type proc struct {
	name, log string
	pid       int
	exited    chan struct{} // closed when the process exits
	waitErr   error
}

// startDaemon starts d in its own session with output to its log file and
// records its pid file.
func (o *Options) startDaemon(d daemon) (*proc, error) {
	if _, err := os.Stat(d.path); err != nil {
		return nil, fmt.Errorf("%s: binary missing (run make build): %w", d.name, err)
	}
	logPath := o.LogPath(d.name)
	mode := os.O_TRUNC
	if d.restart {
		mode = os.O_APPEND
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|mode, 0o644)
	if err != nil {
		return nil, fmt.Errorf("%s: open log: %w", d.name, err)
	}
	defer logFile.Close()
	if d.restart {
		fmt.Fprintf(logFile, "# restarted at %s\n", time.Now().Format(time.RFC3339Nano))
	}
	cmd := exec.Command(d.path, d.args...)
	cmd.Env = append(baseEnv(o.BinDir), d.env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	fmt.Fprintf(logFile, "# %s %s\n", d.path, strings.Join(d.args, " "))
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start (log: %s): %w", d.name, logPath, err)
	}
	p := &proc{name: d.name, log: logPath, pid: cmd.Process.Pid, exited: make(chan struct{})}
	go func() { p.waitErr = cmd.Wait(); close(p.exited) }()
	st, err := startTime(p.pid)
	if err != nil {
		// Most likely it exited already: report it as a failed start, with
		// its log, rather than as a bookkeeping error.
		select {
		case <-p.exited:
			return nil, p.failure(fmt.Sprintf("exited (%v)", p.waitErr))
		case <-time.After(time.Second):
		}
	}
	if err == nil {
		err = os.WriteFile(filepath.Join(o.pidDir(), d.name+".pid"), fmt.Appendf(nil, "%d %d\n", p.pid, st), 0o644)
	}
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("%s: record pid: %w", d.name, err)
	}
	return p, nil
}

func baseEnv(binDir string) []string {
	return []string{
		"PATH=" + binDir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"HOME=/root",
	}
}

// failure describes a daemon that did not come up, naming it and its log.
func (p *proc) failure(reason string) error {
	tail := lastLines(p.log, 5)
	if tail != "" {
		tail = "\n  last log lines:\n    " + strings.ReplaceAll(tail, "\n", "\n    ")
	}
	return fmt.Errorf("%s failed to start: %s (log: %s)%s", p.name, reason, p.log, tail)
}

// waitReady polls check until it succeeds, the daemon exits, or ctx ends.
func (p *proc) waitReady(ctx context.Context, check func(context.Context) error) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = check(ctx); last == nil {
			return nil
		}
		select {
		case <-p.exited:
			return p.failure(fmt.Sprintf("exited (%v)", p.waitErr))
		case <-ctx.Done():
			return p.failure(fmt.Sprintf("not ready in time: %v", last))
		case <-tick.C:
		}
	}
}

func lastLines(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// startTime returns the process start time in clock ticks (/proc/<pid>/stat
// field 22); with the pid it names a process uniquely across pid reuse.
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	state, start, err := parseStat(b)
	if err != nil {
		return 0, fmt.Errorf("parse /proc/%d/stat: %w", pid, err)
	}
	if state == "Z" || state == "X" {
		return 0, fmt.Errorf("process %d is a zombie", pid)
	}
	return start, nil
}

// recorded is a daemon known from its pid file.
type recorded struct {
	name  string
	pid   int
	start uint64
}

// alive reports whether the recorded process still runs (same pid and start).
func (r recorded) alive() bool {
	st, err := startTime(r.pid)
	return err == nil && st == r.start
}

// recordedDaemons reads every pid file.
func (o *Options) recordedDaemons() ([]recorded, error) {
	ents, err := os.ReadDir(o.pidDir())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []recorded
	for _, e := range ents {
		name, ok := strings.CutSuffix(e.Name(), ".pid")
		if !ok {
			continue
		}
		b, err := os.ReadFile(filepath.Join(o.pidDir(), e.Name()))
		if err != nil {
			continue
		}
		var r recorded
		if _, err := fmt.Sscanf(string(b), "%d %d", &r.pid, &r.start); err != nil {
			continue
		}
		r.name = name
		out = append(out, r)
	}
	return out, nil
}

// stopDaemon sends SIGTERM, waits up to grace, then SIGKILLs, and removes
// the pid file. A daemon that is already gone is not an error.
func (o *Options) stopDaemon(name string, grace time.Duration) {
	rs, _ := o.recordedDaemons()
	for _, r := range rs {
		if r.name == name {
			killRecorded(r, grace)
		}
	}
	_ = os.Remove(filepath.Join(o.pidDir(), name+".pid"))
}

func killRecorded(r recorded, grace time.Duration) {
	if !r.alive() {
		return
	}
	_ = syscall.Kill(r.pid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !r.alive() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	_ = syscall.Kill(r.pid, syscall.SIGKILL)
	for i := 0; i < 250 && r.alive(); i++ {
		time.Sleep(20 * time.Millisecond)
	}
}
