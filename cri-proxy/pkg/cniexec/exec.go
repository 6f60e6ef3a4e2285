package cniexec

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
	"golang.org/x/sync/semaphore"
	"k8s.io/klog/v2"
)

// WaitDelay is how long a plugin's output is waited for after the plugin
// was killed: its children may hold its stdout open.
const WaitDelay = 2 * time.Second

// InstanceEnv is the environment variable that marks the processes of one
// proxy instance (see Options.Instance and KillOrphans).
const InstanceEnv = "CRI_PROXY_INSTANCE"

// Options configure an Exec.
type Options struct {
	// Env ("KEY=value") is added to each plugin's environment for every KEY
	// the environment libcni built does not set.
	Env []string
	// MaxProcesses bounds the plugin processes this Exec runs at once,
	// across every caller: a drain of many pods queues here instead of
	// starting hundreds of processes. Zero or less: unbounded.
	MaxProcesses int
	// Instance, when set, is put in every plugin's environment as
	// InstanceEnv. Plugins pass their environment on to the IPAM plugins
	// they run, so KillOrphans(Instance) finds the whole tree a killed
	// proxy left behind.
	Instance string
}

// Exec runs plugin binaries like libcni's RawExec, with three differences
// that keep a plugin from outliving its caller's interest in it:
//
//   - each plugin runs in its own process group, killed as a whole when
//     ctx ends; its output is waited for at most WaitDelay after that;
//   - a plugin gets SIGKILL when the proxy dies (parent-death signal);
//   - at most Options.MaxProcesses plugins run at once; a call waiting for
//     its turn gives up when ctx ends.
type Exec struct {
	version.PluginDecoder
	env  []string
	sem  *semaphore.Weighted
	slot int64
}

var _ invoke.Exec = &Exec{}

// New returns an Exec.
func New(o Options) *Exec {
	e := &Exec{env: slices.Clone(o.Env)}
	if o.Instance != "" {
		e.env = append(e.env, InstanceEnv+"="+o.Instance)
	}
	if o.MaxProcesses > 0 {
		e.sem, e.slot = semaphore.NewWeighted(int64(o.MaxProcesses)), 1
	}
	return e
}

// GOMAXPROCS returns the environment that runs Go plugins with
// GOMAXPROCS=n; n < 1 returns none. A plugin process lives for one request,
// and most of its CPU goes to starting the Go runtime: with one P it starts
// about a millisecond faster, which matters when a node attaches many
// networks at once (see make bench-proxy).
func GOMAXPROCS(n int) []string {
	if n < 1 {
		return nil
	}
	return []string{"GOMAXPROCS=" + strconv.Itoa(n)}
}

// withEnv returns environ plus each of extra whose key environ lacks.
func withEnv(environ, extra []string) []string {
	out := environ
	for _, kv := range extra {
		key, _, _ := strings.Cut(kv, "=")
		if !slices.ContainsFunc(environ, func(e string) bool { return strings.HasPrefix(e, key+"=") }) {
			out = append(out[:len(out):len(out)], kv)
		}
	}
	return out
}

// ExecPlugin runs pluginPath with stdinData and environ and returns its
// stdout. A failed plugin's CNI error (JSON on stdout) is returned as a
// *types.Error; when ctx ended first, the error wraps ctx.Err().
func (e *Exec) ExecPlugin(ctx context.Context, pluginPath string, stdinData []byte, environ []string) ([]byte, error) {
	plugin := filepath.Base(pluginPath)
	if e.sem != nil {
		if err := e.sem.Acquire(ctx, e.slot); err != nil {
			return nil, fmt.Errorf("plugin %s: waiting for a free plugin process slot: %w", plugin, err)
		}
		defer e.sem.Release(e.slot)
	}
	for attempt := 0; ; attempt++ {
		stdout, stderr, err := run(ctx, pluginPath, stdinData, withEnv(environ, e.env))
		if errors.Is(err, exec.ErrWaitDelay) && ctx.Err() == nil {
			// It exited 0 but its output pipe stayed open past WaitDelay
			// (a child of its own, or a busy node): what it wrote counts
			// if it is whole.
			if stdout.Len() == 0 || json.Valid(stdout.Bytes()) {
				err = nil
			} else {
				return nil, &types.Error{Code: types.ErrInternal, Msg: fmt.Sprintf("plugin %s exited 0, but its output was cut off after %s: %q", plugin, WaitDelay, stdout.String())}
			}
		}
		if err == nil {
			if stderr.Len() > 0 {
				klog.FromContext(ctx).V(4).Info("plugin stderr", "plugin", plugin, "stderr", stderr.String())
			}
			return stdout.Bytes(), nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("plugin %s: %w (%v)", plugin, ctx.Err(), err)
		}
		// The binary may be being replaced right now: retry, as RawExec does.
		if strings.Contains(err.Error(), "text file busy") && attempt < 5 {
			select {
			case <-time.After(time.Second):
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("plugin %s: %w", plugin, ctx.Err())
			}
		}
		return nil, pluginError(err, stdout.Bytes(), stderr.Bytes())
	}
}

func run(ctx context.Context, pluginPath string, stdinData []byte, environ []string) (stdout, stderr *bytes.Buffer, err error) {
	stdout, stderr = &bytes.Buffer{}, &bytes.Buffer{}
	cmd := exec.CommandContext(ctx, pluginPath)
	cmd.Env = environ
	cmd.Stdin = bytes.NewReader(stdinData)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Pdeathsig follows the thread that forked, not the process; Go keeps
	// its threads for the life of the process unless a goroutine exits
	// while locked to one, which nothing in the proxy does. KillOrphans
	// covers the rest (the plugin's own children).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error {
		// The plugin and everything it started.
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return err
		}
		return nil
	}
	cmd.WaitDelay = WaitDelay
	return stdout, stderr, cmd.Run()
}

// pluginError turns a failed run into the CNI error the plugin printed, as
// libcni's RawExec does.
func pluginError(err error, stdout, stderr []byte) error {
	e := &types.Error{}
	switch {
	case len(stdout) == 0 && len(stderr) == 0:
		e.Msg = fmt.Sprintf("netplugin failed with no error message: %v", err)
	case len(stdout) == 0:
		e.Msg = fmt.Sprintf("netplugin failed: %q: %v", string(stderr), err)
	default:
		if perr := json.Unmarshal(stdout, e); perr != nil {
			e.Msg = fmt.Sprintf("netplugin failed but error parsing its diagnostic message %q: %v", string(stdout), perr)
		}
	}
	if e.Msg == "" && e.Details == "" {
		e.Msg = fmt.Sprintf("netplugin failed with no error message: %v", err)
	}
	return e
}

// FindInPath returns the path of plugin in paths.
func (e *Exec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}
