//go:build integration

package attachment

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/plugins/pkg/ns"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/catalog"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/cniexec"
	"sigs.k8s.io/pod-networks/internal/poll"
)

// Environment of the re-executed test binary that plays a proxy killed
// during Attach.
const (
	roleEnv   = "ATTACH_IT_ROLE"
	configEnv = "ATTACH_IT_CONFIG"
	roleChild = "attach-child"
)

func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == roleChild {
		if err := runAttachChild(); err != nil {
			fmt.Fprintln(os.Stderr, "attach child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	_, statErr := os.Stat(netnsRunDir)
	code := m.Run()
	if os.IsNotExist(statErr) {
		os.Remove(netnsRunDir) // created by the tests; only if empty
	}
	if left := leftovers(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "FAIL: left on the host: %v\n", left)
		code = 1
	}
	os.Exit(code)
}

// childConfig is what the child attaches.
type childConfig struct {
	NetDir, StateDir, CacheDir string
	BinDirs                    []string
	NetNS                      string
	Pod                        PodRef
	Requests                   []Request
	// Instance marks the child's plugin processes (cniexec.Options).
	Instance string
}

// runAttachChild attaches as a proxy would, and is killed while doing so.
func runAttachChild() error {
	var cfg childConfig
	if err := json.Unmarshal([]byte(os.Getenv(configEnv)), &cfg); err != nil {
		return err
	}
	store, err := catalog.New(catalog.Config{Dir: cfg.NetDir, BinDirs: cfg.BinDirs})
	if err != nil {
		return err
	}
	store.Refresh(context.Background())
	m, err := NewManager(store, Config{StateDir: cfg.StateDir, CacheDir: cfg.CacheDir, BinDirs: cfg.BinDirs, Timeout: time.Minute,
		Runtime: &fakeRuntime{}, Exec: cniexec.New(cniexec.Options{Instance: cfg.Instance})})
	if err != nil {
		return err
	}
	in, err := m.Intend(cfg.Pod, cfg.Requests)
	if err != nil {
		return err
	}
	_ = in // the runtime made the sandbox; the proxy dies before settling
	_, err = m.Attach(context.Background(), cfg.Pod, cfg.NetNS, cfg.Requests)
	return fmt.Errorf("Attach returned (%v); it should have been killed", err)
}

func pod(id string) PodRef {
	return PodRef{Namespace: "it", Name: "pod-" + id, UID: "uid-" + id, SandboxID: id}
}

// assertClean fails if anything of network is left: leases, links in the
// netns, ports on the plugin's bridge.
func assertClean(t *testing.T, e *realEnv, netns ns.NetNS, bridge string, networks ...string) {
	t.Helper()
	for _, n := range networks {
		if l := leases(t, e.dataDir, n); len(l) > 0 {
			t.Errorf("network %s: leases left: %v", n, l)
		}
	}
	if netns != nil {
		if links := netnsLinks(t, netns); len(links) > 0 {
			t.Errorf("links left in the netns: %v", links)
		}
	}
	if bridge != "" {
		if ports := bridgePorts(t, bridge); len(ports) > 0 {
			t.Errorf("ports left on bridge %s: %v", bridge, ports)
		}
	}
	if files, _ := filepath.Glob(filepath.Join(e.stateDir, "*.json")); len(files) > 0 {
		t.Errorf("records left: %v", files)
	}
	if files, _ := filepath.Glob(filepath.Join(e.cacheDir, "results", "*")); len(files) > 0 {
		t.Errorf("cache entries left: %v", files)
	}
}

func inSubnet(t *testing.T, cidrs []string, subnet string) bool {
	t.Helper()
	_, sn, err := net.ParseCIDR(subnet)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cidrs {
		if ip, _, err := net.ParseCIDR(c); err == nil && sn.Contains(ip) {
			return true
		}
	}
	return false
}

func TestIntegrationBridge(t *testing.T) {
	e := newRealEnv(t)
	br := pluginBridgeName(t)
	e.addNetwork(t, "blue", bridgeNetwork("blue", "1.1.0", br, "10.251.1.0/24", e.dataDir))
	m := e.manager(t, Config{})
	if got := e.store.Available(); !slices.Equal(got, []string{"blue"}) {
		n, _ := e.store.Lookup("blue")
		t.Fatalf("Available() = %v (blue: %v): want blue, with CNI STATUS passing", got, n.Err)
	}
	netns := newNetNS(t)
	ctx := context.Background()

	atts, err := m.Attach(ctx, pod("bridge1"), netns.Path(), []Request{{Name: "blue", Interface: "net1"}})
	if err != nil {
		t.Fatal(err)
	}
	links := netnsLinks(t, netns)
	if !inSubnet(t, links["net1"], "10.251.1.0/24") {
		t.Fatalf("links in the netns = %v, want net1 with an address in 10.251.1.0/24", links)
	}
	if len(atts) != 1 || !slices.Equal(atts[0].IPs, links["net1"]) || atts[0].MAC == "" {
		t.Errorf("Attach() = %+v, want net1's address %v and a MAC", atts, links["net1"])
	}
	if l := leases(t, e.dataDir, "blue"); len(l) != 1 {
		t.Errorf("leases = %v, want one", l)
	}
	if ports := bridgePorts(t, br); len(ports) != 1 {
		t.Errorf("bridge ports = %v, want the veth", ports)
	}
	if err := m.Detach(ctx, "bridge1"); err != nil {
		t.Fatal(err)
	}
	assertClean(t, e, netns, br, "blue")
	if err := m.Detach(ctx, "bridge1"); err != nil {
		t.Fatalf("second Detach: %v", err)
	}
}

func TestIntegrationDetachAfterNetworkFileRemoved(t *testing.T) {
	e := newRealEnv(t)
	br := pluginBridgeName(t)
	e.addNetwork(t, "blue", bridgeNetwork("blue", "1.0.0", br, "10.251.2.0/24", e.dataDir))
	m := e.manager(t, Config{})
	netns := newNetNS(t)
	ctx := context.Background()
	if _, err := m.Attach(ctx, pod("removed1"), netns.Path(), []Request{{Name: "blue", Interface: "net1"}}); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(e.netDir, "blue.conflist")); err != nil {
		t.Fatal(err)
	}
	e.store.Refresh(ctx)
	if got := e.store.Available(); len(got) != 0 {
		t.Fatalf("Available() = %v after the file was removed", got)
	}
	if err := m.Detach(ctx, "removed1"); err != nil {
		t.Fatal(err)
	}
	assertClean(t, e, netns, br, "blue")
}

func TestIntegrationDetachAfterNetNSRemoved(t *testing.T) {
	e := newRealEnv(t)
	br := pluginBridgeName(t)
	e.addNetwork(t, "blue", bridgeNetwork("blue", "1.0.0", br, "10.251.3.0/24", e.dataDir))
	m := e.manager(t, Config{})
	netns := newNetNS(t)
	ctx := context.Background()
	if _, err := m.Attach(ctx, pod("nsgone1"), netns.Path(), []Request{{Name: "blue", Interface: "net1"}}); err != nil {
		t.Fatal(err)
	}
	// The sandbox's netns goes first (a crash, or containerd's teardown).
	netns.Close()
	if err := syscall.Unmount(netns.Path(), 0); err != nil {
		t.Fatal(err)
	}
	if err := m.Detach(ctx, "nsgone1"); err != nil {
		t.Fatal(err)
	}
	// The kernel destroys a netns, and the veth pair with it, asynchronously.
	err := poll.Until(t.Context(), 50*time.Millisecond, 10*time.Second, func(context.Context) error {
		if ports := bridgePorts(t, br); len(ports) > 0 {
			return fmt.Errorf("ports on %s: %v", br, ports)
		}
		return nil
	})
	if err != nil {
		t.Errorf("the netns's veth stays: %v", err)
	}
	assertClean(t, e, nil, br, "blue")
}

func TestIntegrationMacvlan(t *testing.T) {
	e := newRealEnv(t)
	master := hostBridge(t)
	e.addNetwork(t, "green", macvlanNetwork("green", master, "10.251.20.0/24", e.dataDir))
	m := e.manager(t, Config{})
	netns := newNetNS(t)
	ctx := context.Background()
	const mac, ip = "02:42:0a:fb:14:32", "10.251.20.50/24"
	atts, err := m.Attach(ctx, pod("macvlan1"), netns.Path(), []Request{{Name: "green", Interface: "data0", IPs: []string{ip}, MAC: mac}})
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) != 1 || atts[0].MAC != mac || !slices.Equal(atts[0].IPs, []string{ip}) {
		t.Errorf("Attach() = %+v, want MAC %s and IP %s from the capability args", atts, mac, ip)
	}
	links := netnsLinks(t, netns)
	if !slices.Equal(links["data0"], []string{ip}) {
		t.Errorf("links in the netns = %v, want data0 with %s", links, ip)
	}
	err = netns.Do(func(ns.NetNS) error {
		i, err := net.InterfaceByName("data0")
		if err == nil && i.HardwareAddr.String() != mac {
			err = fmt.Errorf("data0 has MAC %s, want %s", i.HardwareAddr, mac)
		}
		return err
	})
	if err != nil {
		t.Error(err)
	}
	if err := m.Detach(ctx, "macvlan1"); err != nil {
		t.Fatal(err)
	}
	assertClean(t, e, netns, "", "green")
}

// TestIntegrationParallelAttach attaches four macvlan networks at once, and
// measures that against one after another.
func TestIntegrationParallelAttach(t *testing.T) {
	e := newRealEnv(t)
	master := hostBridge(t)
	var reqs []Request
	var names []string
	for i := 1; i <= 4; i++ {
		name := fmt.Sprintf("mv%d", i)
		names = append(names, name)
		e.addNetwork(t, name, macvlanNetwork(name, master, fmt.Sprintf("10.251.%d.0/24", 30+i), e.dataDir))
		reqs = append(reqs, Request{Name: name, Interface: fmt.Sprintf("net%d", i)})
	}
	parallel := e.manager(t, Config{Concurrency: 4})
	sequential := e.manager(t, Config{Concurrency: 1})
	netns := newNetNS(t)
	ctx := context.Background()

	// Every interface is there, with its network's address.
	if _, err := parallel.Attach(ctx, pod("par0"), netns.Path(), reqs); err != nil {
		t.Fatal(err)
	}
	links := netnsLinks(t, netns)
	for i := 1; i <= 4; i++ {
		if !inSubnet(t, links[fmt.Sprintf("net%d", i)], fmt.Sprintf("10.251.%d.0/24", 30+i)) {
			t.Errorf("links = %v: net%d has no address of its network", links, i)
		}
	}
	if err := parallel.Detach(ctx, "par0"); err != nil {
		t.Fatal(err)
	}
	assertClean(t, e, netns, "", names...)

	const rounds = 7
	var par, seq []time.Duration
	for r := 0; r < rounds; r++ {
		for _, c := range []struct {
			m   *Manager
			out *[]time.Duration
		}{{parallel, &par}, {sequential, &seq}} {
			id := fmt.Sprintf("round%d-%d", r, len(*c.out))
			start := time.Now()
			if _, err := c.m.Attach(ctx, pod(id), netns.Path(), reqs); err != nil {
				t.Fatal(err)
			}
			*c.out = append(*c.out, time.Since(start))
			if err := c.m.Detach(ctx, id); err != nil {
				t.Fatal(err)
			}
		}
	}
	assertClean(t, e, netns, "", names...)
	t.Logf("4 macvlan+host-local ADDs (median of %d, incl. 2 record writes): parallel (concurrency 4) %v, sequential (concurrency 1) %v; speed-up %.2fx",
		rounds, median(par), median(seq), float64(median(seq))/float64(median(par)))
	t.Logf("all rounds: parallel %v; sequential %v", par, seq)
}

func median(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

const failScript = `case "$CNI_COMMAND" in
ADD) echo '{"cniVersion": "1.0.0", "code": 11, "msg": "failplug: refusing on purpose"}'; exit 1 ;;
VERSION) echo '{"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]}' ;;
esac
exit 0
`

// slowScript records its pid and starts a child that records its own in
// marker.child, then sleeps in ADD; DEL succeeds.
func slowScript(marker string) string {
	return `case "$CNI_COMMAND" in
ADD) sleep 60 </dev/null >/dev/null 2>&1 & echo $! > ` + marker + `.child; echo $$ > ` + marker + `; exec sleep 60 ;;
VERSION) echo '{"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]}' ;;
esac
exit 0
`
}

func chainedNetwork(name, bridge, subnet, dataDir, second string) string {
	return fmt.Sprintf(`{"cniVersion": "1.0.0", "name": %q, "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": false, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "dataDir": %q}},
  {"type": %q}]}`, name, bridge, subnet, dataDir, second)
}

func TestIntegrationRollback(t *testing.T) {
	e := newRealEnv(t)
	master := hostBridge(t)
	br := pluginBridgeName(t)
	e.script(t, "failplug", failScript)
	e.addNetwork(t, "good", macvlanNetwork("good", master, "10.251.40.0/24", e.dataDir))
	e.addNetwork(t, "bad", chainedNetwork("bad", br, "10.251.41.0/24", e.dataDir, "failplug"))
	m := e.manager(t, Config{})
	netns := newNetNS(t)

	_, err := m.Attach(context.Background(), pod("rollback1"), netns.Path(),
		[]Request{{Name: "good", Interface: "net1"}, {Name: "bad", Interface: "net2"}})
	if err == nil {
		t.Fatal("Attach succeeded")
	}
	if want := `network "bad" (interface net2): add: plugin type="failplug" failed (add): failplug: refusing on purpose`; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	t.Logf("error: %v", err)
	assertClean(t, e, netns, br, "good", "bad")
	if got := m.Attachments("rollback1"); got != nil {
		t.Errorf("Attachments() = %v", got)
	}
}

func TestIntegrationTimeoutRollsBack(t *testing.T) {
	e := newRealEnv(t)
	br := pluginBridgeName(t)
	marker := filepath.Join(t.TempDir(), "slow.pid")
	e.script(t, "slowplug", slowScript(marker))
	e.addNetwork(t, "slow", chainedNetwork("slow", br, "10.251.42.0/24", e.dataDir, "slowplug"))
	m := e.manager(t, Config{Timeout: time.Second})
	netns := newNetNS(t)

	start := time.Now()
	_, err := m.Attach(context.Background(), pod("timeout1"), netns.Path(), []Request{{Name: "slow", Interface: "net1"}})
	took := time.Since(start)
	if err == nil || !strings.Contains(err.Error(), `network "slow" (interface net1): add: timed out after 1s`) {
		t.Fatalf("error = %v, want a timeout", err)
	}
	// Loose: what this guards against is waiting for the 60 s plugin.
	if took > 1*time.Second+cniexec.WaitDelay+10*time.Second {
		t.Errorf("Attach took %v with a 1s timeout", took)
	}
	t.Logf("timed out and rolled back in %v: %v", took, err)
	assertClean(t, e, netns, br, "slow")
	if pid := readPid(t, marker); processRunning(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("the timed-out plugin (pid %d) still runs", pid)
	}
}

func readPid(t *testing.T, file string) int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// TestIntegrationRestartRecovery kills a proxy during Attach: one network is
// attached, the other is half done (its bridge plugin ran, its second plugin
// hangs, with a child of its own). The plugin dies with the proxy; its child,
// orphaned, is killed by the next proxy before anything is deleted. The new
// Manager on the same state dir cleans everything up, and stops the sandbox,
// which is still running without its networks.
func TestIntegrationRestartRecovery(t *testing.T) {
	e := newRealEnv(t)
	master := hostBridge(t)
	br := pluginBridgeName(t)
	marker := filepath.Join(t.TempDir(), "slow.pid")
	e.script(t, "slowplug", slowScript(marker))
	e.addNetwork(t, "fast", macvlanNetwork("fast", master, "10.251.50.0/24", e.dataDir))
	e.addNetwork(t, "slow", chainedNetwork("slow", br, "10.251.51.0/24", e.dataDir, "slowplug"))
	netns := newNetNS(t)
	instance := "it-" + filepath.Base(e.stateDir) + strconv.Itoa(os.Getpid())

	sandbox := pod("killed1")
	cfg, _ := json.Marshal(childConfig{
		NetDir: e.netDir, StateDir: e.stateDir, CacheDir: e.cacheDir, BinDirs: e.binDirs, NetNS: netns.Path(),
		Pod: sandbox, Requests: []Request{{Name: "fast", Interface: "net1"}, {Name: "slow", Interface: "net2"}}, Instance: instance,
	})
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), roleEnv+"="+roleChild, configEnv+"="+string(cfg))
	var out bytes.Buffer
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- child.Wait() }()

	// Kill it once the slow plugin and its child run and the fast network
	// is attached.
	err := poll.Until(t.Context(), 10*time.Millisecond, 30*time.Second, func(context.Context) error {
		select {
		case err := <-exited:
			return poll.Fatal(fmt.Errorf("child exited early: %v", err))
		default:
		}
		for _, f := range []string{marker, marker + ".child"} {
			if _, err := os.Stat(f); err != nil {
				return err
			}
		}
		if l := leases(t, e.dataDir, "fast"); len(l) != 1 {
			return fmt.Errorf("fast network leases %v", l)
		}
		return nil
	})
	if err != nil {
		child.Process.Kill()
		t.Fatalf("the child never reached the slow plugin: %v\n%s", err, out.String())
	}
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-exited
	slowPid, grandchild := readPid(t, marker), readPid(t, marker+".child")
	t.Cleanup(func() { syscall.Kill(grandchild, syscall.SIGKILL) })
	// The plugin dies with the proxy (parent-death signal); its own child
	// does not.
	err = poll.Until(t.Context(), 10*time.Millisecond, 10*time.Second, func(context.Context) error {
		if processRunning(slowPid) {
			return fmt.Errorf("pid %d runs", slowPid)
		}
		return nil
	})
	if err != nil {
		syscall.Kill(slowPid, syscall.SIGKILL)
		t.Fatalf("the plugin outlived the proxy: %v", err)
	}
	if !processRunning(grandchild) {
		t.Fatalf("the plugin's child (pid %d) is gone already: nothing for the sweep to prove", grandchild)
	}

	// What the killed proxy left behind.
	rec, err := readRecord(recordFile(e.stateDir, "killed1"), "killed1")
	if err != nil {
		t.Fatalf("no record of the interrupted Attach: %v", err)
	}
	if l := leases(t, e.dataDir, "slow"); len(l) != 1 {
		t.Errorf("slow network leases = %v, want the half-done ADD's", l)
	}
	links := netnsLinks(t, netns)
	t.Logf("left by the killed proxy: record with %d attachments, links %v", len(rec.Attachments), links)
	if len(links) != 2 {
		t.Errorf("links in the netns = %v, want net1 and net2", links)
	}

	// The next proxy: first the orphans, then the records.
	killed, err := cniexec.KillOrphans(context.Background(), instance)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(killed, grandchild) || processRunning(grandchild) {
		t.Errorf("KillOrphans killed %v, want the plugin's child %d", killed, grandchild)
	}
	m := e.manager(t, Config{})
	if got := m.Attachments("killed1"); len(got) != 2 {
		t.Fatalf("Attachments() after restart = %v, want both networks", got)
	}
	// The sandbox still runs: the runtime made it, its networks never were.
	snap := Snapshot{Taken: time.Now(), Sandboxes: []Sandbox{{ID: "killed1", Pod: sandbox, Ready: true}}}
	if err := m.Reconcile(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	if got := e.runtime.Stopped(); !slices.Equal(got, []string{"killed1"}) {
		t.Errorf("stopped %v, want the sandbox", got)
	}
	assertClean(t, e, netns, br, "fast", "slow")
	if files, _ := filepath.Glob(filepath.Join(e.stateDir, "intents", "*")); len(files) > 0 {
		t.Errorf("intents left: %v", files)
	}
}

// TestIntegrationGC leaks a host-local lease without any record or cache
// entry; CNI GC with the recorded attachments as valid removes it.
func TestIntegrationGC(t *testing.T) {
	e := newRealEnv(t)
	ipamOnly := fmt.Sprintf(`{"cniVersion": "1.1.0", "name": "addr", "plugins": [
  {"type": "host-local", "ipam": {"ranges": [[{"subnet": "10.251.60.0/24"}]], "dataDir": %q}}]}`, e.dataDir)
	e.addNetwork(t, "addr", ipamOnly)
	m := e.manager(t, Config{})
	netns := newNetNS(t)
	ctx := context.Background()

	atts, err := m.Attach(ctx, pod("kept1"), netns.Path(), []Request{{Name: "addr", Interface: "net1"}})
	if err != nil {
		t.Fatal(err)
	}
	// A leak nobody remembers: another cache dir, no record.
	other := libcni.NewCNIConfigWithCacheDir(e.binDirs, t.TempDir(), nil)
	list, err := libcni.NetworkConfFromBytes([]byte(ipamOnly))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.AddNetworkList(ctx, list, runtimeConf(pod("leaked1"), netns.Path(), Request{Interface: "net1"})); err != nil {
		t.Fatal(err)
	}
	if l := leases(t, e.dataDir, "addr"); len(l) != 2 {
		t.Fatalf("leases = %v, want 2", l)
	}
	if err := m.Reconcile(ctx, Snapshot{Taken: time.Now(), Sandboxes: []Sandbox{{ID: "kept1", Pod: pod("kept1"), Ready: true}}}); err != nil {
		t.Fatal(err)
	}
	l := leases(t, e.dataDir, "addr")
	if len(l) != 1 || len(atts) != 1 || !strings.HasPrefix(atts[0].IPs[0], l[0]+"/") {
		t.Errorf("leases after GC = %v, want only %v", l, atts)
	}
	if err := m.Detach(ctx, "kept1"); err != nil {
		t.Fatal(err)
	}
	assertClean(t, e, nil, "", "addr")
}
