//go:build integration

package attachment

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"golang.org/x/sys/unix"

	"sigs.k8s.io/pod-networks/cri-proxy/internal/fakecni"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/catalog"
)

// linkPrefix starts the name of every host link these tests create, so
// that TestMain can check none is left behind.
const linkPrefix = "pnatt"

// netnsPrefix starts the name of every network namespace they create.
const netnsPrefix = "pnattest-"

// cniBinDir returns the real plugins' dir: $CNI_BIN_DIR, else the build
// output of the module.
func cniBinDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("CNI_BIN_DIR")
	if dir == "" {
		dir = "../../../_output/bin/cni"
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"bridge", "host-local", "macvlan"} {
		if _, err := os.Stat(filepath.Join(abs, p)); err != nil {
			t.Fatalf("CNI plugin %s not found in %s (set CNI_BIN_DIR, or run `make build`): %v", p, abs, err)
		}
	}
	return abs
}

func requireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("integration tests need root (network namespaces and links)")
	}
}

// uniqueName returns a link name with linkPrefix, at most 15 characters.
func uniqueName(t testing.TB, suffix string) string {
	t.Helper()
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	name := linkPrefix + hex.EncodeToString(b) + suffix
	if len(name) > 15 {
		t.Fatalf("link name %q too long", name)
	}
	return name
}

// netnsRunDir holds the bind mounts of the tests' network namespaces.
const netnsRunDir = "/var/run/netns"

// newNetNS returns a throwaway network namespace, bind-mounted under
// netnsRunDir, and unmounts and removes it at cleanup.
//
// It does what testutils.NewNS and testutils.UnmountNS of
// github.com/containernetworking/plugins/pkg/testutils do (minus making
// netnsRunDir a shared mount): that package cannot be imported here, as it
// pulls in github.com/containernetworking/cni/pkg/skel and through it
// github.com/vishvananda/netns, which has no go.sum entry in this module.
func newNetNS(t testing.TB) ns.NetNS {
	t.Helper()
	if err := os.MkdirAll(netnsRunDir, 0o755); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(netnsRunDir, netnsPrefix+hex.EncodeToString(b))
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()

	errc := make(chan error, 1)
	go func() {
		// The thread goes back to its original netns before it is
		// unlocked. A thread left in the new netns would keep it alive
		// forever if it were the main thread, which Go never exits.
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
		if err != nil {
			errc <- fmt.Errorf("open the thread's netns: %w", err)
			return
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		mountErr := unix.Mount(self, path, "none", unix.MS_BIND, "")
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Still locked: the thread exits with the goroutine.
			errc <- fmt.Errorf("return to the original netns: %w", err)
			return
		}
		runtime.UnlockOSThread()
		if mountErr != nil {
			mountErr = fmt.Errorf("bind mount %s: %w", path, mountErr)
		}
		errc <- mountErr
	}()
	if err := <-errc; err != nil {
		os.Remove(path)
		t.Fatal(err)
	}
	netns, err := ns.GetNS(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		netns.Close()
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && err != unix.EINVAL {
			t.Errorf("unmount netns %s: %v", path, err)
		}
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			t.Errorf("remove netns %s: %v", path, err)
		}
	})
	return netns
}

func ipCmd(args ...string) (string, error) {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// hostBridge creates an up bridge link on the host, deleted at cleanup.
func hostBridge(t testing.TB) string {
	t.Helper()
	name := uniqueName(t, "m")
	if _, err := ipCmd("link", "add", name, "type", "bridge"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteLink(t, name) })
	if _, err := ipCmd("link", "set", name, "up"); err != nil {
		t.Fatal(err)
	}
	return name
}

// pluginBridgeName returns a name for the bridge the bridge plugin creates;
// it is deleted at cleanup (the plugin never deletes it).
func pluginBridgeName(t testing.TB) string {
	t.Helper()
	name := uniqueName(t, "b")
	t.Cleanup(func() { deleteLink(t, name) })
	return name
}

func deleteLink(t testing.TB, name string) {
	if _, err := net.InterfaceByName(name); err != nil {
		return
	}
	if _, err := ipCmd("link", "del", name); err != nil {
		t.Errorf("cleanup: %v", err)
	}
}

// bridgePorts returns the host links enslaved to bridge.
func bridgePorts(t testing.TB, bridge string) []string {
	t.Helper()
	if _, err := net.InterfaceByName(bridge); err != nil {
		return nil
	}
	out, err := ipCmd("-j", "link", "show", "master", bridge)
	if err != nil {
		t.Fatal(err)
	}
	var links []struct {
		Name string `json:"ifname"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		t.Fatalf("ip -j link: %v: %s", err, out)
	}
	var ports []string
	for _, l := range links {
		ports = append(ports, l.Name)
	}
	return ports
}

// netnsLinks returns the links in netns but lo, with their addresses.
func netnsLinks(t testing.TB, netns ns.NetNS) map[string][]string {
	t.Helper()
	links := map[string][]string{}
	err := netns.Do(func(ns.NetNS) error {
		ifs, err := net.Interfaces()
		if err != nil {
			return err
		}
		for _, i := range ifs {
			if i.Name == "lo" {
				continue
			}
			addrs, err := i.Addrs()
			if err != nil {
				return err
			}
			links[i.Name] = nil
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
					links[i.Name] = append(links[i.Name], ipn.String())
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return links
}

// leases returns the addresses host-local holds in dataDir for network.
func leases(t testing.TB, dataDir, network string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dataDir, network))
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if n := e.Name(); n != "lock" && !strings.HasPrefix(n, "last_reserved_ip") {
			out = append(out, n)
		}
	}
	return out
}

func bridgeNetwork(name, cniVersion, bridge, subnet, dataDir string) string {
	return fmt.Sprintf(`{"cniVersion": %q, "name": %q, "plugins": [
  {"type": "bridge", "bridge": %q, "isGateway": false, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "dataDir": %q}}]}`, cniVersion, name, bridge, subnet, dataDir)
}

func macvlanNetwork(name, master, subnet, dataDir string) string {
	return fmt.Sprintf(`{"cniVersion": "1.0.0", "name": %q, "plugins": [
  {"type": "macvlan", "master": %q, "mode": "bridge", "capabilities": {"mac": true, "ips": true},
   "ipam": {"type": "host-local", "ranges": [[{"subnet": %q}]], "dataDir": %q}}]}`, name, master, subnet, dataDir)
}

// realEnv is a Store and Manager over real plugins.
type realEnv struct {
	netDir, stateDir, cacheDir, dataDir, scriptDir string
	binDirs                                        []string
	store                                          *catalog.Catalog
	runtime                                        *fakeRuntime
}

func newRealEnv(t testing.TB) *realEnv {
	t.Helper()
	requireRoot(t)
	base := t.TempDir()
	e := &realEnv{
		netDir: filepath.Join(base, "networks"), stateDir: filepath.Join(base, "state"), cacheDir: filepath.Join(base, "cache"),
		dataDir: filepath.Join(base, "ipam"), scriptDir: filepath.Join(base, "bin"), runtime: &fakeRuntime{},
	}
	for _, d := range []string{e.netDir, e.scriptDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	e.binDirs = []string{e.scriptDir, cniBinDir(t)}
	store, err := catalog.New(catalog.Config{Dir: e.netDir, BinDirs: e.binDirs})
	if err != nil {
		t.Fatal(err)
	}
	e.store = store
	return e
}

func (e *realEnv) addNetwork(t testing.TB, name, content string) {
	t.Helper()
	fakecni.WriteFile(t, e.netDir, name+".conflist", content)
}

// script installs a plugin script in the env's first bin dir.
func (e *realEnv) script(t testing.TB, name, body string) {
	t.Helper()
	p := filepath.Join(e.scriptDir, name)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
		t.Fatal(err)
	}
}

func (e *realEnv) manager(t testing.TB, cfg Config) *Manager {
	t.Helper()
	e.store.Refresh(context.Background())
	cfg.StateDir, cfg.CacheDir, cfg.BinDirs, cfg.Runtime = e.stateDir, e.cacheDir, e.binDirs, e.runtime
	m, err := NewManager(e.store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// leftovers returns the host links and network namespaces named by these
// tests.
func leftovers() []string {
	ifs, _ := net.Interfaces()
	var out []string
	for _, i := range ifs {
		if strings.HasPrefix(i.Name, linkPrefix) {
			out = append(out, "link "+i.Name)
		}
	}
	entries, _ := os.ReadDir(netnsRunDir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), netnsPrefix) {
			out = append(out, "netns "+e.Name())
		}
	}
	return out
}

// processRunning tells whether pid runs (a zombie does not count).
func processRunning(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
