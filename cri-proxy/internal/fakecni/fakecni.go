// Package fakecni stands in for CNI plugin binaries in unit tests: an
// invoke.Exec that answers ADD, DEL, STATUS and GC from memory, keeps the
// attachments ADD made and DEL removed (so tests can check that nothing
// leaks), and fails, delays or blocks on request. Each network gets an
// address and a MAC of its own (AddressOf, MACOf), so a result given to the
// wrong network fails the test that reads it. Unit tests only: features are
// proven with the real plugins.
package fakecni

import (
	"context"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/invoke"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"
)

// Call is one plugin invocation seen by Exec.
type Call struct {
	Cmd, Plugin, Network, IfName, ContainerID, NetNS, Args string
	Stdin                                                  map[string]any
	Start, End                                             time.Time
}

// Exec is the fake plugins. Change its failure maps only through Set.
type Exec struct {
	version.PluginDecoder

	mu          sync.Mutex
	calls       []Call
	inflight    int
	maxInflight int
	active      map[string]bool // network/containerID/ifname

	// Missing lists plugin binaries that do not exist.
	Missing map[string]bool
	// AddDelay delays the ADDs of a network (a cancelled ADD is like a
	// killed plugin: it may have done its work).
	AddDelay map[string]time.Duration
	// AddErr fails the ADDs of a network with the message, after they
	// did their work; AddErrType does the same for a plugin type.
	AddErr, AddErrType map[string]string
	// DelErr fails the DELs of a network.
	DelErr map[string]string
	// StatusErr fails the STATUS of a network.
	StatusErr map[string]string
	// OnAdd runs at the start of every ADD, outside the lock.
	OnAdd func(c Call)
	// OnDel runs at the start of every DEL, outside the lock, with the
	// call's context: it may block until that ends.
	OnDel func(ctx context.Context, c Call)
}

var _ invoke.Exec = &Exec{}

// New returns fake plugins with no failures.
func New() *Exec {
	return &Exec{
		active:     map[string]bool{},
		Missing:    map[string]bool{},
		AddDelay:   map[string]time.Duration{},
		AddErr:     map[string]string{},
		AddErrType: map[string]string{},
		DelErr:     map[string]string{},
		StatusErr:  map[string]string{},
	}
}

// AddressOf is the address ADD gives network's attachments, in CIDR form.
func AddressOf(network string) string { return fmt.Sprintf("10.%d.0.7/24", netIndex(network)) }

// GatewayOf is the gateway ADD reports for network.
func GatewayOf(network string) string { return fmt.Sprintf("10.%d.0.1", netIndex(network)) }

// MACOf is the MAC ADD gives network's attachments.
func MACOf(network string) string { return fmt.Sprintf("02:00:00:00:%02x:01", netIndex(network)) }

// netIndex maps a network name to 1..250.
func netIndex(network string) int {
	h := fnv.New32a()
	h.Write([]byte(network))
	return int(h.Sum32()%250) + 1
}

// FindInPath finds every plugin but the Missing ones in the first path.
func (f *Exec) FindInPath(plugin string, paths []string) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Missing[plugin] || len(paths) == 0 {
		return "", fmt.Errorf("failed to find plugin %q in path %v", plugin, paths)
	}
	return filepath.Join(paths[0], plugin), nil
}

// ExecPlugin answers one plugin call.
func (f *Exec) ExecPlugin(ctx context.Context, pluginPath string, stdinData []byte, environ []string) ([]byte, error) {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	var conf map[string]any
	if err := json.Unmarshal(stdinData, &conf); err != nil {
		return nil, err
	}
	c := Call{
		Cmd: env["CNI_COMMAND"], Plugin: filepath.Base(pluginPath), IfName: env["CNI_IFNAME"],
		ContainerID: env["CNI_CONTAINERID"], NetNS: env["CNI_NETNS"], Args: env["CNI_ARGS"],
		Stdin: conf, Start: time.Now(),
	}
	c.Network, _ = conf["name"].(string)
	key := c.Network + "/" + c.ContainerID + "/" + c.IfName

	f.mu.Lock()
	f.inflight++
	f.maxInflight = max(f.maxInflight, f.inflight)
	delay := f.AddDelay[c.Network]
	onAdd, onDel := f.OnAdd, f.OnDel
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
		if msg, ok := f.AddErr[c.Network]; ok {
			return nil, &types.Error{Code: 999, Msg: msg}
		}
		if msg, ok := f.AddErrType[c.Plugin]; ok {
			return nil, &types.Error{Code: 999, Msg: msg}
		}
		return json.Marshal(map[string]any{
			"cniVersion": conf["cniVersion"],
			"interfaces": []map[string]any{
				{"name": "veth" + c.IfName, "mac": "aa:aa:aa:aa:aa:aa"},
				{"name": c.IfName, "mac": MACOf(c.Network), "sandbox": c.NetNS},
			},
			"ips": []map[string]any{
				{"address": AddressOf(c.Network), "gateway": GatewayOf(c.Network), "interface": 1},
			},
		})
	case "DEL":
		if onDel != nil {
			onDel(ctx, c)
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		if msg, ok := f.DelErr[c.Network]; ok {
			return nil, &types.Error{Code: 999, Msg: msg}
		}
		delete(f.active, key)
		return nil, nil
	case "STATUS":
		f.mu.Lock()
		defer f.mu.Unlock()
		if msg, ok := f.StatusErr[c.Network]; ok {
			return nil, &types.Error{Code: 50, Msg: msg}
		}
		return nil, nil
	case "GC":
		return nil, nil
	}
	return nil, fmt.Errorf("fake: unexpected command %q", c.Cmd)
}

// Set changes the fake under its lock.
func (f *Exec) Set(fn func(f *Exec)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f)
}

// Calls returns the calls of command cmd ("" for all), in completion order.
func (f *Exec) Calls(cmd string) []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Call
	for _, c := range f.calls {
		if cmd == "" || c.Cmd == cmd {
			out = append(out, c)
		}
	}
	return out
}

// Active returns the attachments (network/containerID/ifname) added and
// not deleted.
func (f *Exec) Active() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k := range f.active {
		out = append(out, k)
	}
	return out
}

// SetActive records an attachment as if an ADD had made it.
func (f *Exec) SetActive(network, containerID, ifname string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.active[network+"/"+containerID+"/"+ifname] = true
}

// MaxInflight returns the most calls that ran at once since the last
// ResetCalls.
func (f *Exec) MaxInflight() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.maxInflight
}

// ResetCalls forgets the calls seen so far.
func (f *Exec) ResetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls, f.maxInflight = nil, 0
}

// Observer records what it is told; it implements the observers of the
// catalog and attachment packages.
type Observer struct {
	mu           sync.Mutex
	attached     map[string][]error
	detached     map[string][]error
	configErrors map[string][]string
	inUse        []int
}

// NewObserver returns an empty Observer.
func NewObserver() *Observer {
	return &Observer{attached: map[string][]error{}, detached: map[string][]error{}, configErrors: map[string][]string{}}
}

// AttachDone records an ADD's error.
func (o *Observer) AttachDone(network string, _ time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.attached[network] = append(o.attached[network], err)
}

// DetachDone records a DEL's error.
func (o *Observer) DetachDone(network string, _ time.Duration, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.detached[network] = append(o.detached[network], err)
}

// ConfigError records a config error by file base name.
func (o *Observer) ConfigError(file string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.configErrors[filepath.Base(file)] = append(o.configErrors[filepath.Base(file)], err.Error())
}

// AttachmentsInUse records a count.
func (o *Observer) AttachmentsInUse(n int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.inUse = append(o.inUse, n)
}

// Attached returns the errors of network's ADDs (nil for a success).
func (o *Observer) Attached(network string) []error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]error(nil), o.attached[network]...)
}

// Detached returns the errors of network's DELs (nil for a success).
func (o *Observer) Detached(network string) []error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]error(nil), o.detached[network]...)
}

// ConfigErrors returns the config errors reported, by file base name.
func (o *Observer) ConfigErrors() map[string][]string {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := map[string][]string{}
	for k, v := range o.configErrors {
		out[k] = append([]string(nil), v...)
	}
	return out
}

// LastInUse returns the last count reported, -1 if none.
func (o *Observer) LastInUse() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.inUse) == 0 {
		return -1
	}
	return o.inUse[len(o.inUse)-1]
}

// Conflist returns a config list named name of cniVersion with the given
// plugin types; each plugin declares the ips and mac capabilities.
func Conflist(name, cniVersion string, plugins ...string) string {
	return ConflistWithCapabilities(name, cniVersion, []string{"ips", "mac"}, plugins...)
}

// ConflistWithCapabilities is Conflist with plugins that declare caps
// instead (none when caps is empty).
func ConflistWithCapabilities(name, cniVersion string, caps []string, plugins ...string) string {
	declared := map[string]bool{}
	for _, c := range caps {
		declared[c] = true
	}
	capsJSON, err := json.Marshal(declared)
	if err != nil {
		panic(err) // a map of strings to bools always marshals
	}
	var ps []string
	for _, p := range plugins {
		ps = append(ps, fmt.Sprintf(`{"type": %q, "capabilities": %s}`, p, capsJSON))
	}
	return fmt.Sprintf(`{"cniVersion": %q, "name": %q, "plugins": [%s]}`, cniVersion, name, strings.Join(ps, ", "))
}

// WriteFile writes content to dir/name and returns the path.
func WriteFile(t testing.TB, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
