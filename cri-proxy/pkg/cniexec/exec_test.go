package cniexec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"sigs.k8s.io/pod-networks/internal/poll"
)

func writeScript(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPluginExecReturnsCNIError(t *testing.T) {
	p := writeScript(t, t.TempDir(), "failing", `echo '{"cniVersion": "1.0.0", "code": 11, "msg": "try again later", "details": "lock held"}'; exit 1`)
	_, err := New(Options{}).ExecPlugin(context.Background(), p, []byte("{}"), nil)
	var cniErr *types.Error
	if !errors.As(err, &cniErr) || cniErr.Code != 11 || cniErr.Msg != "try again later" {
		t.Fatalf("error = %#v, want the plugin's CNI error", err)
	}
}

func TestPluginExecPassesStdinAndEnv(t *testing.T) {
	p := writeScript(t, t.TempDir(), "echo", `read line; echo "$line $CNI_COMMAND"`)
	out, err := New(Options{}).ExecPlugin(context.Background(), p, []byte("hello\n"), []string{"CNI_COMMAND=ADD"})
	if err != nil || string(out) != "hello ADD\n" {
		t.Fatalf("ExecPlugin() = %q, %v", out, err)
	}
}

func TestPluginExecAddsEnvUnlessSet(t *testing.T) {
	p := writeScript(t, t.TempDir(), "env", `echo "$GOMAXPROCS $GOGC $CNI_COMMAND"`)
	e := New(Options{Env: append(GOMAXPROCS(1), "GOGC=50")})
	environ := []string{"CNI_COMMAND=ADD", "GOGC=200"}
	out, err := e.ExecPlugin(context.Background(), p, nil, environ)
	if err != nil || string(out) != "1 200 ADD\n" {
		t.Fatalf("ExecPlugin() = %q, %v; want GOMAXPROCS added and GOGC left as libcni set it", out, err)
	}
	if len(environ) != 2 || environ[1] != "GOGC=200" {
		t.Errorf("caller's environ changed: %v", environ)
	}
	if GOMAXPROCS(0) != nil {
		t.Errorf("GOMAXPROCS(0) = %v, want none", GOMAXPROCS(0))
	}
}

// A plugin whose child keeps stdout open must not hold the caller past its
// deadline: the whole process group is killed.
func TestPluginExecKillsProcessGroupOnTimeout(t *testing.T) {
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "child.pid")
	p := writeScript(t, dir, "hanging", `sleep 60 & echo $! > `+pidFile+`; wait`)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := New(Options{}).ExecPlugin(ctx, p, nil, nil)
	// Loose: what this guards against is waiting for the 60 s child.
	if took := time.Since(start); took > WaitDelay+10*time.Second {
		t.Errorf("ExecPlugin returned after %v", took)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %v, want a deadline error", err)
	}
	data, _ := os.ReadFile(pidFile)
	var pid int
	if _, perr := fmt.Sscan(string(data), &pid); perr != nil {
		t.Fatalf("child pid: %v", perr)
	}
	waitFor(t, exited(pid))
}

// processRunning tells whether pid runs (a zombie does not count).
func processRunning(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the command, which is in parentheses.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}

// At most MaxProcesses plugins run at once, whoever calls.
func TestMaxProcessesBoundsConcurrentPlugins(t *testing.T) {
	dir := t.TempDir()
	// Each run marks itself running, records how many are, and waits
	// until it is released (or one second) before leaving.
	p := writeScript(t, dir, "counting", `mkdir "$DIR/run.$$"; ls -d "$DIR"/run.* | wc -l >> "$DIR/seen"
i=0; while [ ! -e "$DIR/release" ] && [ $i -lt 20 ]; do sleep 0.05; i=$((i+1)); done
rmdir "$DIR/run.$$"`)
	e := New(Options{MaxProcesses: 2})
	errs := make(chan error, 6)
	for range 6 {
		go func() {
			_, err := e.ExecPlugin(context.Background(), p, nil, []string{"DIR=" + dir})
			errs <- err
		}()
	}
	// Release once two are running: the others must have waited.
	waitFor(t, func(context.Context) error {
		if n := countLines(filepath.Join(dir, "seen")); n < 2 {
			return fmt.Errorf("%d plugins started", n)
		}
		return nil
	})
	if err := os.WriteFile(filepath.Join(dir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for range 6 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(filepath.Join(dir, "seen"))
	for _, f := range strings.Fields(string(data)) {
		if f != "1" && f != "2" {
			t.Fatalf("a plugin saw %s plugins running, want at most 2 (all: %q)", f, data)
		}
	}
}

// A call waiting for a slot gives up when its context ends, naming why.
func TestMaxProcessesWaitEndsWithContext(t *testing.T) {
	dir := t.TempDir()
	p := writeScript(t, dir, "blocking", `touch "$DIR/started"; while [ ! -e "$DIR/release" ]; do sleep 0.02; done`)
	e := New(Options{MaxProcesses: 1})
	done := make(chan error, 1)
	go func() {
		_, err := e.ExecPlugin(context.Background(), p, nil, []string{"DIR=" + dir})
		done <- err
	}()
	waitFor(t, func(context.Context) error {
		_, err := os.Stat(filepath.Join(dir, "started"))
		return err
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := e.ExecPlugin(ctx, p, nil, []string{"DIR=" + dir})
	if !errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "plugin process slot") {
		t.Errorf("error = %v, want a cancelled wait for a slot", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "release"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// KillOrphans kills the processes marked with the instance, and only those.
func TestKillOrphans(t *testing.T) {
	start := func(env ...string) *exec.Cmd {
		cmd := exec.Command("sleep", "60")
		cmd.Env = env
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cmd.Process.Kill(); _, _ = cmd.Process.Wait() })
		return cmd
	}
	ours := start(InstanceEnv+"=test-a", "OTHER=1")
	other := start(InstanceEnv + "=test-b")
	unmarked := start()
	waitFor(t, hasEnv(ours.Process.Pid, InstanceEnv+"=test-a"))
	// Reap what is killed so that it does not linger as a zombie.
	reaped := make(chan struct{})
	go func() { _, _ = ours.Process.Wait(); close(reaped) }()

	killed, err := KillOrphans(context.Background(), "test-a")
	if err != nil {
		t.Fatal(err)
	}
	if len(killed) != 1 || killed[0] != ours.Process.Pid {
		t.Errorf("killed %v, want only %d", killed, ours.Process.Pid)
	}
	<-reaped
	for _, c := range []*exec.Cmd{other, unmarked} {
		if !processRunning(c.Process.Pid) {
			t.Errorf("process %d was not ours but is gone", c.Process.Pid)
		}
	}
	if _, err := KillOrphans(context.Background(), ""); err == nil {
		t.Error("KillOrphans with no instance: no error")
	}
}

// A plugin dies with the process that started it (parent-death signal), and
// carries the instance marker that KillOrphans looks for.
func TestPluginDiesWithItsParent(t *testing.T) {
	if os.Getenv("CNIEXEC_TEST_PARENT") != "" {
		// The parent role: run the plugin until killed.
		_, _ = New(Options{Instance: "test-parent"}).ExecPlugin(context.Background(), os.Getenv("CNIEXEC_TEST_PARENT"), nil, nil)
		os.Exit(0)
	}
	dir := t.TempDir()
	pidFile := filepath.Join(dir, "plugin.pid")
	p := writeScript(t, dir, "hanging", `echo $$ > `+pidFile+`; exec sleep 60`)
	parent := exec.Command(os.Args[0], "-test.run=^TestPluginDiesWithItsParent$")
	parent.Env = append(os.Environ(), "CNIEXEC_TEST_PARENT="+p)
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func(context.Context) error {
		if countLines(pidFile) != 1 {
			return errors.New("the plugin has not written its pid")
		}
		return nil
	})
	pid := readInt(t, pidFile)
	waitFor(t, hasEnv(pid, InstanceEnv+"=test-parent"))
	if err := parent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_, _ = parent.Process.Wait()
	waitFor(t, exited(pid))
}

// waitFor polls cond, failing the test if it is not done within 10 s.
func waitFor(t *testing.T, cond poll.Condition) {
	t.Helper()
	if err := poll.Until(t.Context(), 10*time.Millisecond, 10*time.Second, cond); err != nil {
		t.Fatal(err)
	}
}

// exited is done once pid no longer runs.
func exited(pid int) poll.Condition {
	return func(context.Context) error {
		if processRunning(pid) {
			return fmt.Errorf("process %d still runs", pid)
		}
		return nil
	}
}

func countLines(path string) int {
	data, _ := os.ReadFile(path)
	return strings.Count(string(data), "\n")
}

func readInt(t *testing.T, path string) int {
	t.Helper()
	data, _ := os.ReadFile(path)
	var n int
	if _, err := fmt.Sscan(string(data), &n); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return n
}

// hasEnv is done once pid's environment has kv.
func hasEnv(pid int, kv string) poll.Condition {
	return func(context.Context) error {
		data, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", pid))
		if err != nil {
			return err
		}
		if !slices.Contains(strings.Split(string(data), "\x00"), kv) {
			return fmt.Errorf("process %d has no %s yet", pid, kv)
		}
		return nil
	}
}

// A plugin that exits 0 while a child of its own keeps its output open
// succeeds with what it wrote: WaitDelay only stops the wait.
func TestPluginExecSucceedsWhenAChildHoldsItsOutput(t *testing.T) {
	p := writeScript(t, t.TempDir(), "forking", `echo '{"cniVersion": "1.0.0"}'; sleep 3 & exit 0`)
	out, err := New(Options{}).ExecPlugin(context.Background(), p, nil, nil)
	if err != nil || strings.TrimSpace(string(out)) != `{"cniVersion": "1.0.0"}` {
		t.Fatalf("ExecPlugin() = %q, %v; want the plugin's result", out, err)
	}
	// Cut-off output is an error that says so.
	p = writeScript(t, t.TempDir(), "cut", `printf '{"cniVersion": '; sleep 3 & exit 0`)
	if _, err := New(Options{}).ExecPlugin(context.Background(), p, nil, nil); err == nil || !strings.Contains(err.Error(), "output was cut off") {
		t.Fatalf("ExecPlugin() = %v, want a cut-off error", err)
	}
	// A failing plugin with no message still says why.
	p = writeScript(t, t.TempDir(), "silent", `echo '{"cniVersion": "1.0.0", "code": 7}'; exit 1`)
	if _, err := New(Options{}).ExecPlugin(context.Background(), p, nil, nil); err == nil || !strings.Contains(err.Error(), "exit status 1") {
		t.Fatalf("ExecPlugin() = %v, want the exit status named", err)
	}
}
