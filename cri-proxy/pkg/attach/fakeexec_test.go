package attach

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// fakeCall is one plugin invocation seen by fakeExec.
type fakeCall struct {
	Cmd, Plugin, Network, IfName, ContainerID, NetNS, Args string
	Stdin                                                  map[string]interface{}
	Start, End                                             time.Time
}

// fakeExec stands in for plugin binaries. It keeps the attachments ADD
// made and DEL removed, so tests can check that nothing leaks.
type fakeExec struct {
	version.PluginDecoder

	mu          sync.Mutex
	calls       []fakeCall
	inflight    int
	maxInflight int
	active      map[string]bool // network/containerID/ifname
	missing     map[string]bool // plugin binaries that do not exist
	addDelay    map[string]time.Duration
	addErr      map[string]string // network → message of a failing ADD
	addErrType  map[string]string // plugin type → message of a failing ADD
	delErr      map[string]string
	statusErr   map[string]string
	// onAdd runs at the start of every ADD, outside the lock.
	onAdd func(c fakeCall)
}

func newFakeExec() *fakeExec {
	return &fakeExec{
		active:     map[string]bool{},
		missing:    map[string]bool{},
		addDelay:   map[string]time.Duration{},
		addErr:     map[string]string{},
		addErrType: map[string]string{},
		delErr:     map[string]string{},
		statusErr:  map[string]string{},
	}
}

func (f *fakeExec) FindInPath(plugin string, paths []string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.missing[plugin] || len(paths) == 0 {
		return "", fmt.Errorf("failed to find plugin %q in path %v", plugin, paths)
	}
	return filepath.Join(paths[0], plugin), nil
}

func (f *fakeExec) ExecPlugin(ctx context.Context, pluginPath string, stdinData []byte, environ []string) ([]byte, error) {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	var conf map[string]interface{}
	if err := json.Unmarshal(stdinData, &conf); err != nil {
		return nil, err
	}
	c := fakeCall{
		Cmd: env["CNI_COMMAND"], Plugin: filepath.Base(pluginPath), IfName: env["CNI_IFNAME"],
		ContainerID: env["CNI_CONTAINERID"], NetNS: env["CNI_NETNS"], Args: env["CNI_ARGS"],
		Stdin: conf, Start: time.Now(),
	}
	c.Network, _ = conf["name"].(string)
	key := c.Network + "/" + c.ContainerID + "/" + c.IfName

	f.mu.Lock()
	f.inflight++
	f.maxInflight = max(f.maxInflight, f.inflight)
	delay := f.addDelay[c.Network]
	onAdd := f.onAdd
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inflight--
		c.End = time.Now()
		f.calls = append(f.calls, c)
		f.mu.Unlock()
	}()

	switch c.Cmd {
	case "ADD":
		if onAdd != nil {
			onAdd(c)
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-ctx.Done():
				// Like a killed plugin: it may have done half its work.
				f.mu.Lock()
				f.active[key] = true
				f.mu.Unlock()
				return nil, ctx.Err()
			}
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.active[key] = true // even a failing plugin may leave something
		if msg, ok := f.addErr[c.Network]; ok {
			return nil, &types.Error{Code: 999, Msg: msg}
		}
		if msg, ok := f.addErrType[c.Plugin]; ok {
			return nil, &types.Error{Code: 999, Msg: msg}
		}
		return json.Marshal(map[string]interface{}{
			"cniVersion": conf["cniVersion"],
			"interfaces": []map[string]interface{}{
				{"name": "veth" + c.IfName, "mac": "aa:aa:aa:aa:aa:aa"},
				{"name": c.IfName, "mac": "02:00:00:00:00:01", "sandbox": c.NetNS},
			},
			"ips": []map[string]interface{}{
				{"address": "10.1.0.7/24", "gateway": "10.1.0.1", "interface": 1},
			},
		})
	case "DEL":
		f.mu.Lock()
		defer f.mu.Unlock()
		if msg, ok := f.delErr[c.Network]; ok {
			return nil, &types.Error{Code: 999, Msg: msg}
		}
		delete(f.active, key)
		return nil, nil
	case "STATUS":
		f.mu.Lock()
		defer f.mu.Unlock()
		if msg, ok := f.statusErr[c.Network]; ok {
			return nil, &types.Error{Code: 50, Msg: msg}
		}
		return nil, nil
	case "GC":
		return nil, nil
	}
	return nil, fmt.Errorf("fake: unexpected command %q", c.Cmd)
}

func (f *fakeExec) set(fn func(f *fakeExec)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// callsOf returns the calls of command cmd ("" for all), in completion order.
func (f *fakeExec) callsOf(cmd string) []fakeCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []fakeCall
	for _, c := range f.calls {
		if cmd == "" || c.Cmd == cmd {
			out = append(out, c)
		}
	}
	return out
}

func (f *fakeExec) activeKeys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k := range f.active {
		out = append(out, k)
	}
	return out
}

func (f *fakeExec) resetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls, f.maxInflight = nil, 0
}

// recordingObserver records what it is told.
type recordingObserver struct {
	mu           sync.Mutex
	attached     map[string][]error
	detached     map[string][]error
	configErrors map[string][]string
	inUse        []int
}

func newRecordingObserver() *recordingObserver {
	return &recordingObserver{attached: map[string][]error{}, detached: map[string][]error{}, configErrors: map[string][]string{}}
}

func (o *recordingObserver) AttachDone(network string, _ time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.attached[network] = append(o.attached[network], err)
}

func (o *recordingObserver) DetachDone(network string, _ time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.detached[network] = append(o.detached[network], err)
}

func (o *recordingObserver) ConfigError(file string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.configErrors[filepath.Base(file)] = append(o.configErrors[filepath.Base(file)], err.Error())
}

func (o *recordingObserver) AttachmentsInUse(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.inUse = append(o.inUse, n)
}

func (o *recordingObserver) lastInUse() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.inUse) == 0 {
		return -1
	}
	return o.inUse[len(o.inUse)-1]
}

// conflist returns a config list named name of cniVersion with the given
// plugin types; each plugin declares the ips and mac capabilities.
func conflist(name, cniVersion string, plugins ...string) string {
	var ps []string
	for _, p := range plugins {
		ps = append(ps, fmt.Sprintf(`{"type": %q, "capabilities": {"ips": true, "mac": true}}`, p))
	}
	return fmt.Sprintf(`{"cniVersion": %q, "name": %q, "plugins": [%s]}`, cniVersion, name, strings.Join(ps, ", "))
}

func writeFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
