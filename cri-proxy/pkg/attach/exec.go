package attach

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
	"k8s.io/klog/v2"
)

// pluginWaitDelay is how long a plugin's output is waited for after the
// plugin was killed: its children may hold its stdout open.
const pluginWaitDelay = 2 * time.Second

// pluginExec runs plugin binaries like libcni's RawExec, but each in its own
// process group, which is killed as a whole when ctx ends; output is waited
// for at most pluginWaitDelay after that. A plugin that hangs, or whose
// children keep its stdout open, cannot block the caller past its deadline.
type pluginExec struct {
	version.PluginDecoder
	env []string
}

var _ invoke.Exec = &pluginExec{}

// newPluginExec returns the Exec used when Config.Exec or StoreConfig.Exec
// is nil. libcni is always handed a non-nil Exec: it lazily sets its own
// default without locking, which races when networks are added in parallel.
func newPluginExec() invoke.Exec { return &pluginExec{} }

// NewPluginExec returns an Exec that runs the real plugin binaries as the
// default one does, with env ("KEY=value") added to each plugin's
// environment for every KEY the environment libcni built does not set.
func NewPluginExec(env []string) invoke.Exec { return &pluginExec{env: slices.Clone(env)} }

// PluginGOMAXPROCS returns the environment that runs Go plugins with
// GOMAXPROCS=n; n < 1 returns none. A plugin process lives for one request,
// and most of its CPU goes to starting the Go runtime: with one P it starts
// about a millisecond faster, which matters when a node attaches many
// networks at once (see make bench-proxy).
func PluginGOMAXPROCS(n int) []string {
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
func (e *pluginExec) ExecPlugin(ctx context.Context, pluginPath string, stdinData []byte, environ []string) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		stdout, stderr, err := runPlugin(ctx, pluginPath, stdinData, withEnv(environ, e.env))
		if err == nil {
			if stderr.Len() > 0 {
				klog.FromContext(ctx).V(4).Info("plugin stderr", "plugin", filepath.Base(pluginPath), "stderr", stderr.String())
			}
			return stdout.Bytes(), nil
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("plugin %s: %w (%v)", filepath.Base(pluginPath), ctx.Err(), err)
		}
		// The binary may be being replaced right now: retry, as RawExec does.
		if strings.Contains(err.Error(), "text file busy") && attempt < 5 {
			select {
			case <-time.After(time.Second):
				continue
			case <-ctx.Done():
				return nil, fmt.Errorf("plugin %s: %w", filepath.Base(pluginPath), ctx.Err())
			}
		}
		return nil, pluginError(err, stdout.Bytes(), stderr.Bytes())
	}
}

func runPlugin(ctx context.Context, pluginPath string, stdinData []byte, environ []string) (stdout, stderr *bytes.Buffer, err error) {
	stdout, stderr = &bytes.Buffer{}, &bytes.Buffer{}
	cmd := exec.CommandContext(ctx, pluginPath)
	cmd.Env = environ
	cmd.Stdin = bytes.NewReader(stdinData)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		// The plugin and everything it started.
		if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			return err
		}
		return nil
	}
	cmd.WaitDelay = pluginWaitDelay
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
	return e
}

// FindInPath returns the path of plugin in paths.
func (e *pluginExec) FindInPath(plugin string, paths []string) (string, error) {
	return invoke.FindInPath(plugin, paths)
}
