package attach

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
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
	_, err := newPluginExec().ExecPlugin(context.Background(), p, []byte("{}"), nil)
	var cniErr *types.Error
	if !errors.As(err, &cniErr) || cniErr.Code != 11 || cniErr.Msg != "try again later" {
		t.Fatalf("error = %#v, want the plugin's CNI error", err)
	}
}

func TestPluginExecPassesStdinAndEnv(t *testing.T) {
	p := writeScript(t, t.TempDir(), "echo", `read line; echo "$line $CNI_COMMAND"`)
	out, err := newPluginExec().ExecPlugin(context.Background(), p, []byte("hello\n"), []string{"CNI_COMMAND=ADD"})
	if err != nil || string(out) != "hello ADD\n" {
		t.Fatalf("ExecPlugin() = %q, %v", out, err)
	}
}

func TestPluginExecAddsEnvUnlessSet(t *testing.T) {
	p := writeScript(t, t.TempDir(), "env", `echo "$GOMAXPROCS $GOGC $CNI_COMMAND"`)
	e := NewPluginExec(append(PluginGOMAXPROCS(1), "GOGC=50"))
	environ := []string{"CNI_COMMAND=ADD", "GOGC=200"}
	out, err := e.ExecPlugin(context.Background(), p, nil, environ)
	if err != nil || string(out) != "1 200 ADD\n" {
		t.Fatalf("ExecPlugin() = %q, %v; want GOMAXPROCS added and GOGC left as libcni set it", out, err)
	}
	if len(environ) != 2 || environ[1] != "GOGC=200" {
		t.Errorf("caller's environ changed: %v", environ)
	}
	if PluginGOMAXPROCS(0) != nil {
		t.Errorf("PluginGOMAXPROCS(0) = %v, want none", PluginGOMAXPROCS(0))
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
	_, err := newPluginExec().ExecPlugin(ctx, p, nil, nil)
	if took := time.Since(start); took > pluginWaitDelay+2*time.Second {
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
	deadline := time.Now().Add(5 * time.Second)
	for processRunning(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("the plugin's child %d survived", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
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
