package localcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"sigs.k8s.io/pod-networks/internal/poll"
)

// daemon is a long-running cluster process: it outlives the command that
// started it, so it is tracked by a pid file holding its pid and start time.
type daemon struct {
	name string // component, also the log and pid file name
	path string
	args []string
	// restart appends to the log (kept across a restart: the post-mortem of
	// a fault test needs both lives) instead of truncating it.
	restart bool
}

// runner starts the cluster's daemons, each in its own session with its
// output in logDir, and finds, stops and kills them by their pid files in
// pidDir. It is the only place that starts or signals a process.
type runner struct {
	logDir, pidDir string
	// path is the PATH daemons get: the bin dir first (containerd finds its
	// shim there).
	path string
}

func newRunner(l layout) runner {
	return runner{logDir: l.logDir(), pidDir: l.pidDir(),
		path: l.opts.BinDir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
}

func (r runner) logPath(name string) string { return filepath.Join(r.logDir, name+".log") }
func (r runner) pidFile(name string) string { return filepath.Join(r.pidDir, name+".pid") }

// proc is a started daemon.
type proc struct {
	name, log string
	pid       int
	exited    chan struct{} // closed when the process exits
	waitErr   error
}

// start starts d and records its pid file.
func (r runner) start(d daemon) (*proc, error) {
	if _, err := os.Stat(d.path); err != nil {
		return nil, fmt.Errorf("%s: binary missing (run make build): %w", d.name, err)
	}
	logPath := r.logPath(d.name)
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
	cmd.Env = []string{"PATH=" + r.path, "HOME=/root"}
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
		err = os.WriteFile(r.pidFile(d.name), fmt.Appendf(nil, "%d %d\n", p.pid, st), 0o644)
	}
	if err != nil {
		_ = cmd.Process.Kill()
		return nil, fmt.Errorf("%s: record pid: %w", d.name, err)
	}
	return p, nil
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
	var exitErr error
	err := poll.Until(ctx, 50*time.Millisecond, 0, func(ctx context.Context) error {
		select {
		case <-p.exited:
			exitErr = p.failure(fmt.Sprintf("exited (%v)", p.waitErr))
			return poll.Fatal(exitErr)
		default:
		}
		return check(ctx)
	})
	if err == nil || exitErr != nil {
		return err
	}
	return p.failure(fmt.Sprintf("not ready in time: %v", err))
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

// all reads every pid file.
func (r runner) all() ([]recorded, error) {
	ents, err := os.ReadDir(r.pidDir)
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
		if rec := r.recorded(name); rec != nil {
			out = append(out, *rec)
		}
	}
	return out, nil
}

// recorded reads one daemon's pid file; nil if it has none.
func (r runner) recorded(name string) *recorded {
	b, err := os.ReadFile(r.pidFile(name))
	if err != nil {
		return nil
	}
	rec := recorded{name: name}
	if _, err := fmt.Sscanf(string(b), "%d %d", &rec.pid, &rec.start); err != nil {
		return nil
	}
	return &rec
}

// running reports whether any recorded daemon is alive.
func (r runner) running() bool {
	rs, _ := r.all()
	for _, rec := range rs {
		if rec.alive() {
			return true
		}
	}
	return false
}

// stop sends SIGTERM, waits up to grace, then SIGKILLs, waits until the
// process is gone for good, and removes the pid file. A daemon that is
// already gone is not an error.
func (r runner) stop(name string, grace time.Duration) {
	if rec := r.recorded(name); rec != nil && rec.alive() {
		_ = syscall.Kill(rec.pid, syscall.SIGTERM)
		if rec.waitExited(context.Background(), grace) != nil {
			_ = syscall.Kill(rec.pid, syscall.SIGKILL)
			_ = rec.waitExited(context.Background(), 10*time.Second)
		}
	}
	_ = os.Remove(r.pidFile(name))
}

// kill SIGKILLs a running daemon, as a crash would, waits until it is gone
// for good and removes its pid file.
func (r runner) kill(name string) error {
	rec := r.recorded(name)
	if rec == nil || !rec.alive() {
		return fmt.Errorf("%s is not running", name)
	}
	if err := syscall.Kill(rec.pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("%s: kill %d: %w", name, rec.pid, err)
	}
	if err := rec.waitExited(context.Background(), 10*time.Second); err != nil {
		return fmt.Errorf("%s: still running 10s after SIGKILL: %w", name, err)
	}
	return os.Remove(r.pidFile(name))
}

// waitExited waits until the process is gone for good (see exited).
func (rec recorded) waitExited(ctx context.Context, timeout time.Duration) error {
	return poll.Until(ctx, 5*time.Millisecond, timeout, func(context.Context) error {
		if exited(rec.pid, rec.start) {
			return nil
		}
		return fmt.Errorf("pid %d still running", rec.pid)
	})
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

// exited reports whether the process pid that started at start is gone for
// good: reaped, or a zombie none of whose threads still runs. A zombie
// thread-group leader is not enough: its other threads may still be
// exiting, and the last one closes the process's files (a listening socket
// that a restarted daemon needs).
func exited(pid int, start uint64) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	state, st, err := parseStat(b)
	if err != nil || st != start {
		return true // another process reuses the pid
	}
	if state != "Z" && state != "X" {
		return false
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	return err != nil || len(tasks) <= 1
}

// parseStat returns the state and start time (in clock ticks) of a
// /proc/<pid>/stat text.
func parseStat(b []byte) (string, uint64, error) {
	// The command name (field 2) may hold spaces: fields start after ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return "", 0, errors.New("no command name")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return "", 0, fmt.Errorf("%d fields", len(f))
	}
	st, err := strconv.ParseUint(f[19], 10, 64)
	return f[0], st, err
}
