package attachment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"

	"sigs.k8s.io/pod-networks/cri-proxy/internal/fakecni"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/catalog"
	"sigs.k8s.io/pod-networks/internal/poll"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// env is a Manager over a catalog of fake networks.
type env struct {
	t        *testing.T
	netDir   string
	stateDir string
	cacheDir string
	fe       *fakecni.Exec
	obs      *fakecni.Observer
	rt       *fakeRuntime
	store    *catalog.Catalog
	m        *Manager
	now      time.Time
	nowMu    sync.Mutex
}

// fakeRuntime records the sandboxes it is asked to stop.
type fakeRuntime struct {
	mu      sync.Mutex
	stopped []string
	err     error
}

func (r *fakeRuntime) StopSandbox(_ context.Context, id string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.stopped = append(r.stopped, id)
	return nil
}

func (r *fakeRuntime) Stopped() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.stopped)
}

// snap is a snapshot taken now in which the sandboxes ids are ready.
func (e *env) snap(ids ...string) Snapshot {
	s := Snapshot{Taken: e.clock()}
	for _, id := range ids {
		s.Sandboxes = append(s.Sandboxes, Sandbox{ID: id, Ready: true, Pod: PodRef{UID: "uid-" + id}})
	}
	return s
}

func newEnv(t *testing.T, cfg Config, networks map[string]string) *env {
	t.Helper()
	e := &env{t: t, netDir: t.TempDir(), fe: fakecni.New(), obs: fakecni.NewObserver(), rt: &fakeRuntime{}, now: time.Unix(1_000_000, 0)}
	base := t.TempDir()
	e.stateDir, e.cacheDir = filepath.Join(base, "state"), filepath.Join(base, "cache")
	for name, content := range networks {
		fakecni.WriteFile(t, e.netDir, name+".conflist", content)
	}
	var err error
	e.store, err = catalog.New(catalog.Config{Dir: e.netDir, BinDirs: []string{"/fake/bin"}, Exec: e.fe, Observer: e.obs})
	if err != nil {
		t.Fatal(err)
	}
	e.store.Refresh(context.Background())
	cfg.StateDir, cfg.CacheDir, cfg.BinDirs, cfg.Exec, cfg.Observer = e.stateDir, e.cacheDir, []string{"/fake/bin"}, e.fe, e.obs
	cfg.Now, cfg.Runtime = e.clock, e.rt
	e.m, err = NewManager(e.store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) clock() time.Time {
	e.nowMu.Lock()
	defer e.nowMu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.nowMu.Lock()
	defer e.nowMu.Unlock()
	e.now = e.now.Add(d)
}

// restart returns a new Manager on the same dirs, as after a proxy restart.
func (e *env) restart(cfg Config) *Manager {
	e.t.Helper()
	cfg.StateDir, cfg.CacheDir, cfg.BinDirs, cfg.Exec, cfg.Observer, cfg.Now, cfg.Runtime = e.stateDir, e.cacheDir, []string{"/fake/bin"}, e.fe, e.obs, e.clock, e.rt
	m, err := NewManager(e.store, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return m
}

func (e *env) assertNoLeak() {
	e.t.Helper()
	if keys := e.fe.Active(); len(keys) > 0 {
		e.t.Errorf("attachments left behind: %v", keys)
	}
	if files, _ := filepath.Glob(filepath.Join(e.stateDir, "*.json")); len(files) > 0 {
		e.t.Errorf("records left behind: %v", files)
	}
	if files, _ := filepath.Glob(filepath.Join(e.stateDir, "intents", "*")); len(files) > 0 {
		e.t.Errorf("intents left behind: %v", files)
	}
	if files, _ := filepath.Glob(filepath.Join(e.cacheDir, "results", "*")); len(files) > 0 {
		e.t.Errorf("cache entries left behind: %v", files)
	}
}

var testPod = PodRef{Namespace: "ns1", Name: "pod1", UID: "uid-1", SandboxID: "sandbox1"}

const testNetNS = "/var/run/netns/test-sandbox1"

func fakeNetworks(names ...string) map[string]string {
	out := map[string]string{}
	for _, n := range names {
		out[n] = fakecni.Conflist(n, "1.0.0", "fakeplug")
	}
	return out
}

func TestAttachAndDetach(t *testing.T) {
	e := newEnv(t, Config{}, map[string]string{
		"blue": fakecni.Conflist("blue", "1.0.0", "fakeplug"),
		"red":  `{"cniVersion": "1.0.0", "name": "red", "plugins": [{"type": "nocaps"}]}`,
	})
	// The record must be on disk, with the config, before any ADD.
	var recordSeen sync.Map
	e.fe.OnAdd = func(c fakecni.Call) {
		var rec record
		data, err := os.ReadFile(recordFile(e.stateDir, c.ContainerID))
		if err == nil && json.Unmarshal(data, &rec) == nil && rec.State == stateAttaching {
			for _, a := range rec.Attachments {
				if a.Network == c.Network && len(a.Config) > 0 {
					recordSeen.Store(c.Network, true)
				}
			}
		}
	}
	reqs := []Request{
		{Name: "blue", Interface: "net1", IPs: []string{"10.1.0.7/24"}, MAC: "02:00:00:00:00:01"},
		{Name: "red", Interface: "data0"},
	}
	atts, err := e.m.Attach(context.Background(), testPod, testNetNS, reqs)
	if err != nil {
		t.Fatal(err)
	}
	// Each network's result goes to that network's attachment.
	want := []Attachment{
		{Network: "blue", Interface: "net1", MAC: fakecni.MACOf("blue"), IPs: []string{fakecni.AddressOf("blue")}, Gateways: []string{fakecni.GatewayOf("blue")}},
		{Network: "red", Interface: "data0", MAC: fakecni.MACOf("red"), IPs: []string{fakecni.AddressOf("red")}, Gateways: []string{fakecni.GatewayOf("red")}},
	}
	if !equalAttachments(atts, want) {
		t.Fatalf("Attach() = %+v, want %+v", atts, want)
	}
	for _, n := range []string{"blue", "red"} {
		if _, ok := recordSeen.Load(n); !ok {
			t.Errorf("network %s: ADD ran before the intent was recorded", n)
		}
	}
	adds := e.fe.Calls("ADD")
	if len(adds) != 2 {
		t.Fatalf("ADD calls = %d, want 2", len(adds))
	}
	for _, c := range adds {
		wantArgs := "IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=pod1;K8S_POD_INFRA_CONTAINER_ID=sandbox1;K8S_POD_UID=uid-1"
		if c.Args != wantArgs || c.ContainerID != "sandbox1" || c.NetNS != testNetNS {
			t.Errorf("ADD %s: args %q container %q netns %q", c.Network, c.Args, c.ContainerID, c.NetNS)
		}
		rc, _ := c.Stdin["runtimeConfig"].(map[string]interface{})
		switch c.Network {
		case "blue":
			if c.IfName != "net1" || fmt.Sprint(rc["ips"]) != "[10.1.0.7/24]" || rc["mac"] != "02:00:00:00:00:01" {
				t.Errorf("ADD blue: ifname %q runtimeConfig %v", c.IfName, rc)
			}
		case "red":
			if c.IfName != "data0" || rc != nil {
				t.Errorf("ADD red: ifname %q runtimeConfig %v: a plugin without capabilities gets none", c.IfName, rc)
			}
		}
	}
	if got := e.m.Attachments(testPod.SandboxID); !equalAttachments(got, want) {
		t.Errorf("Attachments() = %+v, want %+v", got, want)
	}
	if got := e.obs.LastInUse(); got != 2 {
		t.Errorf("AttachmentsInUse = %d, want 2", got)
	}

	// The network file changes and another disappears: DEL uses what ADD used.
	fakecni.WriteFile(t, e.netDir, "blue.conflist", `{"cniVersion": "1.0.0", "name": "blue", "plugins": [{"type": "otherplug"}]}`)
	os.Remove(filepath.Join(e.netDir, "red.conflist"))
	e.store.Refresh(context.Background())

	if err := e.m.Detach(context.Background(), testPod.SandboxID); err != nil {
		t.Fatal(err)
	}
	dels := e.fe.Calls("DEL")
	if len(dels) != 2 {
		t.Fatalf("DEL calls = %d, want 2", len(dels))
	}
	for _, c := range dels {
		if c.Plugin == "otherplug" {
			t.Errorf("DEL %s ran the changed config's plugin", c.Network)
		}
		if c.Network == "blue" {
			rc, _ := c.Stdin["runtimeConfig"].(map[string]interface{})
			if fmt.Sprint(rc["ips"]) != "[10.1.0.7/24]" {
				t.Errorf("DEL blue: runtimeConfig %v, want the ADD's", rc)
			}
		}
	}
	if got := e.m.Attachments(testPod.SandboxID); got != nil {
		t.Errorf("Attachments() after Detach = %v", got)
	}
	if got := e.obs.LastInUse(); got != 0 {
		t.Errorf("AttachmentsInUse = %d, want 0", got)
	}
	e.assertNoLeak()

	// Idempotent.
	e.fe.ResetCalls()
	if err := e.m.Detach(context.Background(), testPod.SandboxID); err != nil {
		t.Fatal(err)
	}
	if n := len(e.fe.Calls("")); n != 0 {
		t.Errorf("second Detach ran %d plugin calls", n)
	}
}

func equalAttachments(a, b []Attachment) bool {
	return slices.EqualFunc(a, b, func(x, y Attachment) bool {
		return x.Network == y.Network && x.Interface == y.Interface && x.MAC == y.MAC &&
			slices.Equal(x.IPs, y.IPs) && slices.Equal(x.Gateways, y.Gateways)
	})
}

func TestAttachValidatesBeforeAnyAdd(t *testing.T) {
	e := newEnv(t, Config{}, map[string]string{
		"blue":   fakecni.Conflist("blue", "1.0.0", "fakeplug"),
		"broken": fakecni.Conflist("broken", "1.0.0", "missingplug"),
	})
	e.fe.Set(func(f *fakecni.Exec) { f.Missing["missingplug"] = true })
	e.store.Refresh(context.Background())

	for _, tc := range []struct {
		name string
		pod  PodRef
		reqs []Request
		want []string
	}{
		{"missing networks", testPod,
			[]Request{{Name: "blue", Interface: "net1"}, {Name: "green", Interface: "net2"}, {Name: "pink", Interface: "net3"}, {Name: "broken", Interface: "net4"}},
			[]string{`network "green": not found`, `network "pink": not found`, `network "broken": not available`, "missingplug"}},
		{"duplicate interface", testPod,
			[]Request{{Name: "blue", Interface: "net1"}, {Name: "blue", Interface: "net1"}},
			[]string{`interface "net1": requested twice`}},
		{"bad interface", testPod, []Request{{Name: "blue", Interface: "a/b"}}, []string{`interface "a/b"`}},
		{"bad ip", testPod, []Request{{Name: "blue", Interface: "net1", IPs: []string{"10.0.0.1"}}}, []string{"ips"}},
		{"bad mac", testPod, []Request{{Name: "blue", Interface: "net1", MAC: "zz"}}, []string{"mac"}},
		{"default route with prefix", testPod, []Request{{Name: "blue", Interface: "net1", DefaultRoute: []string{"10.0.0.1/24"}}},
			[]string{`network "blue": default-route "10.0.0.1/24": not an IP address without prefix length`}},
		{"two default routes of a family", testPod, []Request{
			{Name: "blue", Interface: "net1", DefaultRoute: []string{"10.0.0.1", "fd00::1"}},
			{Name: "red", Interface: "net2", DefaultRoute: []string{"fd01::1", "10.1.0.1"}}},
			[]string{`network "red": default-route "fd01::1": network "blue" has the default route of that IP family already`,
				`network "red": default-route "10.1.0.1": network "blue" has`}},
		{"cni-args not an object", testPod, []Request{{Name: "blue", Interface: "net1", CNIArgs: json.RawMessage(`["x"]`)}},
			[]string{`network "blue": cni-args: must be a JSON object`}},
		{"cni-args a string", testPod, []Request{{Name: "blue", Interface: "net1", CNIArgs: json.RawMessage(`"x"`)}},
			[]string{`network "blue": cni-args: must be a JSON object`}},
		{"bad port mappings", testPod, []Request{{Name: "blue", Interface: "net1", PortMappings: []netrequest.PortMapping{
			{HostPort: 0, ContainerPort: 80, Protocol: "tcp"}, {HostPort: 80, ContainerPort: 80, Protocol: "icmp", HostIP: "x"}}}},
			[]string{`portMappings[0]: ports must be 1 to 65535`, `portMappings[1]: protocol "icmp"`, `portMappings[1]: hostIP "x"`}},
		{"negative bandwidth", testPod, []Request{{Name: "blue", Interface: "net1", Bandwidth: &netrequest.Bandwidth{EgressRate: -1}}},
			[]string{`network "blue": bandwidth: rates and bursts must not be negative`}},
		{"bad sandbox", PodRef{SandboxID: "../x"}, []Request{{Name: "blue", Interface: "net1"}}, []string{"sandbox"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.m.Attach(context.Background(), tc.pod, testNetNS, tc.reqs)
			if err == nil {
				t.Fatal("Attach succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if tc.name == "missing networks" && strings.Contains(err.Error(), `"blue"`) {
				t.Errorf("error %q names an available network", err)
			}
		})
	}
	if n := len(e.fe.Calls("")); n != 0 {
		t.Errorf("%d plugin calls, want none", n)
	}
	e.assertNoLeak()
}

func TestAttachRollsBackOnFailure(t *testing.T) {
	e := newEnv(t, Config{}, fakeNetworks("blue", "red", "green"))
	e.fe.AddErr["red"] = "no more addresses in 10.9.0.0/30"
	reqs := []Request{{Name: "blue", Interface: "net1"}, {Name: "red", Interface: "net2"}, {Name: "green", Interface: "net3"}}
	_, err := e.m.Attach(context.Background(), testPod, testNetNS, reqs)
	if err == nil {
		t.Fatal("Attach succeeded")
	}
	want := `network "red" (interface net2): add: plugin type="fakeplug" failed (add): no more addresses in 10.9.0.0/30`
	if err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
	// Every started network is deleted again, the failed one included.
	dels := map[string]bool{}
	for _, c := range e.fe.Calls("DEL") {
		dels[c.Network] = true
	}
	for _, c := range e.fe.Calls("ADD") {
		if !dels[c.Network] {
			t.Errorf("network %s was added but not deleted", c.Network)
		}
	}
	if !dels["red"] {
		t.Error("the failed network was not deleted")
	}
	if errs := e.obs.Attached("red"); len(errs) != 1 || errs[0] == nil {
		t.Errorf("AttachDone(red) errors = %v, want one failure", errs)
	}
	if got := e.m.Attachments(testPod.SandboxID); got != nil {
		t.Errorf("Attachments() = %v after a failed Attach", got)
	}
	e.assertNoLeak()

	// The sandbox can be attached again once the network works.
	e.fe.Set(func(f *fakecni.Exec) { delete(f.AddErr, "red") })
	if _, err := e.m.Attach(context.Background(), testPod, testNetNS, reqs); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Detach(context.Background(), testPod.SandboxID); err != nil {
		t.Fatal(err)
	}
	e.assertNoLeak()
}

func TestAttachNoNewAddAfterFailure(t *testing.T) {
	e := newEnv(t, Config{Concurrency: 1}, fakeNetworks("a", "b", "c", "d"))
	e.fe.AddErr["b"] = "boom"
	reqs := []Request{{Name: "a", Interface: "net1"}, {Name: "b", Interface: "net2"}, {Name: "c", Interface: "net3"}, {Name: "d", Interface: "net4"}}
	if _, err := e.m.Attach(context.Background(), testPod, testNetNS, reqs); err == nil {
		t.Fatal("Attach succeeded")
	}
	var added, deleted []string
	for _, c := range e.fe.Calls("ADD") {
		added = append(added, c.Network)
	}
	for _, c := range e.fe.Calls("DEL") {
		deleted = append(deleted, c.Network)
	}
	slices.Sort(deleted)
	if !slices.Equal(added, []string{"a", "b"}) || !slices.Equal(deleted, []string{"a", "b"}) {
		t.Errorf("added %v, deleted %v: want a and b only (c and d never started)", added, deleted)
	}
	e.assertNoLeak()
}

func TestAttachTimeout(t *testing.T) {
	e := newEnv(t, Config{Timeout: 200 * time.Millisecond}, fakeNetworks("fast", "slow"))
	e.fe.AddDelay["slow"] = time.Minute
	start := time.Now()
	_, err := e.m.Attach(context.Background(), testPod, testNetNS, []Request{{Name: "fast", Interface: "net1"}, {Name: "slow", Interface: "net2"}})
	took := time.Since(start)
	if err == nil {
		t.Fatal("Attach succeeded")
	}
	if !strings.Contains(err.Error(), `network "slow" (interface net2): add: timed out after 200ms`) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error = %q", err)
	}
	if took > 5*time.Second {
		t.Errorf("Attach took %v with a 200ms timeout", took)
	}
	e.assertNoLeak()
}

func TestAttachCallerCancelStillRollsBack(t *testing.T) {
	e := newEnv(t, Config{}, fakeNetworks("fast", "slow"))
	e.fe.AddDelay["slow"] = time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	e.fe.OnAdd = func(c fakecni.Call) {
		if c.Network == "slow" {
			cancel() // while the slow ADD runs
		}
	}
	_, err := e.m.Attach(ctx, testPod, testNetNS, []Request{{Name: "fast", Interface: "net1"}, {Name: "slow", Interface: "net2"}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error = %v, want cancelled", err)
	}
	e.assertNoLeak()
}

func TestAttachConcurrencyBound(t *testing.T) {
	names := []string{"n1", "n2", "n3", "n4", "n5", "n6", "n7", "n8"}
	e := newEnv(t, Config{Concurrency: 3}, fakeNetworks(names...))
	var reqs []Request
	for i, n := range names {
		e.fe.AddDelay[n] = 50 * time.Millisecond
		reqs = append(reqs, Request{Name: n, Interface: fmt.Sprintf("net%d", i+1)})
	}
	// ADDs are held until three run at once, so the bound is reached
	// however the goroutines are scheduled.
	release := make(chan struct{})
	e.fe.OnAdd = func(fakecni.Call) { <-release }
	done := make(chan error, 1)
	go func() {
		_, err := e.m.Attach(context.Background(), testPod, testNetNS, reqs)
		done <- err
	}()
	err := poll.Until(t.Context(), 5*time.Millisecond, 10*time.Second, func(context.Context) error {
		if n := e.fe.MaxInflight(); n < 3 {
			return fmt.Errorf("%d ADDs at once", n)
		}
		return nil
	})
	close(release)
	if err != nil {
		t.Errorf("the ADDs did not run in parallel: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if e.fe.MaxInflight() != 3 {
		t.Errorf("at most %d ADDs ran at once, want 3", e.fe.MaxInflight())
	}
	e.fe.ResetCalls()
	if err := e.m.Detach(context.Background(), testPod.SandboxID); err != nil {
		t.Fatal(err)
	}
	if e.fe.MaxInflight() > 3 {
		t.Errorf("at most %d DELs ran at once, want <= 3", e.fe.MaxInflight())
	}
	e.assertNoLeak()
}

func TestSlowNetworkDoesNotBlockOthers(t *testing.T) {
	e := newEnv(t, Config{Concurrency: 2}, fakeNetworks("slow", "a", "b", "c"))
	// The slow ADD is held until the others have finished: had it held
	// them up, they would not.
	release := make(chan struct{})
	e.fe.OnAdd = func(c fakecni.Call) {
		if c.Network == "slow" {
			<-release
		}
	}
	reqs := []Request{{Name: "slow", Interface: "net1"}, {Name: "a", Interface: "net2"}, {Name: "b", Interface: "net3"}, {Name: "c", Interface: "net4"}}
	done := make(chan error, 1)
	go func() {
		_, err := e.m.Attach(context.Background(), testPod, testNetNS, reqs)
		done <- err
	}()
	err := poll.Until(t.Context(), 5*time.Millisecond, 10*time.Second, func(context.Context) error {
		var finished []string
		for _, c := range e.fe.Calls("ADD") {
			finished = append(finished, c.Network)
		}
		slices.Sort(finished)
		if !slices.Equal(finished, []string{"a", "b", "c"}) {
			return fmt.Errorf("finished ADDs %v", finished)
		}
		return nil
	})
	close(release)
	if err != nil {
		t.Errorf("the other networks did not finish while the slow one ran: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestAttachSameSandboxAgain(t *testing.T) {
	e := newEnv(t, Config{}, fakeNetworks("blue", "red"))
	reqs := []Request{{Name: "blue", Interface: "net1"}}
	first, err := e.m.Attach(context.Background(), testPod, testNetNS, reqs)
	if err != nil {
		t.Fatal(err)
	}
	e.fe.ResetCalls()
	again, err := e.m.Attach(context.Background(), testPod, testNetNS, reqs)
	if err != nil || !equalAttachments(first, again) {
		t.Fatalf("identical Attach = %v, %v; want %v", again, err, first)
	}
	if n := len(e.fe.Calls("")); n != 0 {
		t.Errorf("identical Attach ran %d plugin calls", n)
	}
	if _, err := e.m.Attach(context.Background(), testPod, testNetNS, []Request{{Name: "red", Interface: "net1"}}); err == nil ||
		!strings.Contains(err.Error(), "already has attachments") {
		t.Fatalf("different Attach: err = %v", err)
	}
	if err := e.m.Detach(context.Background(), testPod.SandboxID); err != nil {
		t.Fatal(err)
	}
	e.assertNoLeak()
}

func TestAttachAndDetachSerializePerSandbox(t *testing.T) {
	e := newEnv(t, Config{}, fakeNetworks("blue"))
	e.fe.AddDelay["blue"] = 200 * time.Millisecond
	started := make(chan struct{})
	e.fe.OnAdd = func(fakecni.Call) { close(started) }
	done := make(chan error, 1)
	go func() {
		_, err := e.m.Attach(context.Background(), testPod, testNetNS, []Request{{Name: "blue", Interface: "net1"}})
		done <- err
	}()
	<-started // the ADD is running: Detach must wait for it
	if err := e.m.Detach(context.Background(), testPod.SandboxID); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	e.assertNoLeak()
}

func TestDetachFailureKeepsAttachmentForRetry(t *testing.T) {
	e := newEnv(t, Config{}, fakeNetworks("blue", "red"))
	if _, err := e.m.Attach(context.Background(), testPod, testNetNS, []Request{{Name: "blue", Interface: "net1"}, {Name: "red", Interface: "net2"}}); err != nil {
		t.Fatal(err)
	}
	e.fe.Set(func(f *fakecni.Exec) { f.DelErr["red"] = "device busy" })
	err := e.m.Detach(context.Background(), testPod.SandboxID)
	if err == nil || !strings.Contains(err.Error(), `network "red" (interface net2): del: `) || !strings.Contains(err.Error(), "device busy") {
		t.Fatalf("Detach error = %v", err)
	}
	if got := e.m.Attachments(testPod.SandboxID); len(got) != 1 || got[0].Network != "red" {
		t.Fatalf("Attachments() = %v, want red only", got)
	}
	// Survives a restart.
	m2 := e.restart(Config{})
	if got := m2.Attachments(testPod.SandboxID); len(got) != 1 || got[0].Network != "red" {
		t.Fatalf("after restart: Attachments() = %v, want red only", got)
	}
	e.fe.Set(func(f *fakecni.Exec) { delete(f.DelErr, "red") })
	// Detaching records are retried by Reconcile; a ready sandbox with one
	// is stopped too (it lost a network).
	if err := m2.Reconcile(context.Background(), e.snap(testPod.SandboxID)); err != nil {
		t.Fatal(err)
	}
	if got := e.rt.Stopped(); !slices.Equal(got, []string{testPod.SandboxID}) {
		t.Errorf("stopped %v, want the sandbox", got)
	}
	if got := m2.Attachments(testPod.SandboxID); got != nil {
		t.Fatalf("Attachments() = %v after the retry", got)
	}
	e.assertNoLeak()
}

func TestRollbackFailureKeepsRecord(t *testing.T) {
	// One at a time, so that blue is added before red fails.
	e := newEnv(t, Config{Concurrency: 1}, fakeNetworks("blue", "red"))
	e.fe.AddErr["red"] = "boom"
	e.fe.DelErr["blue"] = "stuck"
	_, err := e.m.Attach(context.Background(), testPod, testNetNS, []Request{{Name: "blue", Interface: "net1"}, {Name: "red", Interface: "net2"}})
	if err == nil || !strings.Contains(err.Error(), `network "red" (interface net2): add: `) ||
		!strings.Contains(err.Error(), `network "blue" (interface net1): rollback: del: `) {
		t.Fatalf("error = %v", err)
	}
	if got := e.m.Attachments(testPod.SandboxID); len(got) != 1 || got[0].Network != "blue" {
		t.Fatalf("Attachments() = %v, want blue (its DEL failed)", got)
	}
	e.fe.Set(func(f *fakecni.Exec) { delete(f.DelErr, "blue") })
	if err := e.m.Reconcile(context.Background(), e.snap(testPod.SandboxID)); err != nil {
		t.Fatal(err)
	}
	// Its RunPodSandbox failed: the sandbox must not stay up without blue.
	if got := e.rt.Stopped(); !slices.Equal(got, []string{testPod.SandboxID}) {
		t.Errorf("stopped %v, want the sandbox", got)
	}
	e.assertNoLeak()
}

func TestRestartKeepsAttachments(t *testing.T) {
	e := newEnv(t, Config{}, fakeNetworks("blue"))
	atts, err := e.m.Attach(context.Background(), testPod, testNetNS, []Request{{Name: "blue", Interface: "net1"}})
	if err != nil {
		t.Fatal(err)
	}
	// Records hold the networks' configs: only the proxy may read them.
	if fi, err := os.Stat(recordFile(e.stateDir, testPod.SandboxID)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("record: %v, %v; want mode 0600", fi, err)
	}
	// A corrupt record and temporaries of interrupted writes (renameio's,
	// and those of versions before it) are skipped.
	temps := []string{".x.json5577006791947779410", ".x.123.tmp"}
	fakecni.WriteFile(t, e.stateDir, "corrupt.json", "{")
	for _, name := range temps {
		fakecni.WriteFile(t, e.stateDir, name, "{")
	}

	m2 := e.restart(Config{})
	if got := m2.Attachments(testPod.SandboxID); !equalAttachments(got, atts) {
		t.Fatalf("after restart: Attachments() = %v, want %v", got, atts)
	}
	for _, name := range temps {
		if _, err := os.Stat(filepath.Join(e.stateDir, name)); !os.IsNotExist(err) {
			t.Errorf("temporary %s not removed: %v", name, err)
		}
	}
	os.Remove(filepath.Join(e.stateDir, "corrupt.json"))
	// The network is gone from the node: DEL still works from the record.
	os.Remove(filepath.Join(e.netDir, "blue.conflist"))
	e.store.Refresh(context.Background())
	if err := m2.Detach(context.Background(), testPod.SandboxID); err != nil {
		t.Fatal(err)
	}
	e.assertNoLeak()
}

func TestReconcile(t *testing.T) {
	e := newEnv(t, Config{}, map[string]string{
		"old": fakecni.Conflist("old", "1.0.0", "fakeplug"),
		"new": fakecni.Conflist("new", "1.1.0", "fakeplug"),
	})
	ctx := context.Background()
	pod := func(id string) PodRef { return PodRef{Namespace: "ns", Name: id, UID: "u-" + id, SandboxID: id} }
	attach := func(m *Manager, id string) {
		t.Helper()
		if _, err := m.Attach(ctx, pod(id), "/var/run/netns/"+id, []Request{{Name: "old", Interface: "net1"}, {Name: "new", Interface: "net2"}}); err != nil {
			t.Fatal(err)
		}
	}
	attach(e.m, "live1")
	attach(e.m, "gone1")
	m := e.restart(Config{}) // their records are loaded from disk
	taken := e.clock()
	e.advance(time.Second)
	attach(m, "fresh1") // made by this process after the list was taken

	// A cached attachment whose record was lost, of a live sandbox and of a gone one.
	cni := libcni.NewCNIConfigWithCacheDir([]string{"/fake/bin"}, e.cacheDir, e.fe)
	for _, id := range []string{"lostlive", "lostgone"} {
		list, _ := libcni.NetworkConfFromBytes([]byte(fakecni.Conflist("new", "1.1.0", "fakeplug")))
		if _, err := cni.AddNetworkList(ctx, list, runtimeConf(pod(id), "/var/run/netns/"+id, Request{Interface: "net9", IPs: []string{"10.0.0.5/24"}})); err != nil {
			t.Fatal(err)
		}
	}
	e.fe.ResetCalls()

	snap := e.snap("live1", "lostlive")
	snap.Taken = taken
	if err := m.Reconcile(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if got := m.Sandboxes(); !slices.Equal(got, []string{"fresh1", "live1"}) {
		t.Errorf("sandboxes after Reconcile = %v, want fresh1 (newer than the list) and live1", got)
	}
	var deleted []string
	for _, c := range e.fe.Calls("DEL") {
		deleted = append(deleted, c.ContainerID+"/"+c.Network)
		if c.ContainerID == "lostgone" {
			rc, _ := c.Stdin["runtimeConfig"].(map[string]interface{})
			if !strings.Contains(c.Args, "K8S_POD_NAME=lostgone") || fmt.Sprint(rc["ips"]) != "[10.0.0.5/24]" {
				t.Errorf("DEL of a lost record: args %q runtimeConfig %v, want the cached ones", c.Args, rc)
			}
		}
	}
	slices.Sort(deleted)
	if want := []string{"gone1/new", "gone1/old", "lostgone/new"}; !slices.Equal(deleted, want) {
		t.Errorf("deleted %v, want %v", deleted, want)
	}
	gcs := e.fe.Calls("GC")
	if len(gcs) != 1 || gcs[0].Network != "new" {
		t.Fatalf("GC calls = %+v, want one, for the 1.1.0 network", gcs)
	}
	var valid []string
	for _, v := range gcs[0].Stdin["cni.dev/valid-attachments"].([]interface{}) {
		a := v.(map[string]interface{})
		valid = append(valid, fmt.Sprintf("%s/%s", a["containerID"], a["ifname"]))
	}
	slices.Sort(valid)
	if want := []string{"fresh1/net2", "live1/net2", "lostlive/net9"}; !slices.Equal(valid, want) {
		t.Errorf("valid attachments = %v, want %v", valid, want)
	}

	// A list taken after it judges the fresh sandbox.
	if err := m.Reconcile(ctx, e.snap("live1", "lostlive")); err != nil {
		t.Fatal(err)
	}
	if got := m.Sandboxes(); !slices.Equal(got, []string{"live1"}) {
		t.Errorf("sandboxes = %v, want live1", got)
	}
	// Everything goes when nothing is live.
	if err := m.Reconcile(ctx, e.snap()); err != nil {
		t.Fatal(err)
	}
	if got := e.rt.Stopped(); len(got) != 0 {
		t.Errorf("stopped %v, want none: every ready sandbox had its networks", got)
	}
	e.assertNoLeak()
}

func TestReconcileDetachesInterruptedAttach(t *testing.T) {
	e := newEnv(t, Config{}, fakeNetworks("blue"))
	// What a process killed during the ADD leaves: an attaching record, and
	// whatever the plugin did.
	rec := &record{Version: recordVersion, Pod: testPod, NetNS: testNetNS, State: stateAttaching, Attachments: []recordedAttachment{
		{Network: "blue", Interface: "net1", Config: []byte(fakecni.Conflist("blue", "1.0.0", "fakeplug"))},
	}}
	if err := writeRecord(e.stateDir, rec); err != nil {
		t.Fatal(err)
	}
	e.fe.SetActive("blue", "sandbox1", "net1")

	m := e.restart(Config{})
	if got := m.Attachments(testPod.SandboxID); len(got) != 1 {
		t.Fatalf("Attachments() = %v", got)
	}
	// Its RunPodSandbox failed, so the sandbox must not run: detached and
	// stopped, kubelet makes a new one.
	if err := m.Reconcile(context.Background(), e.snap(testPod.SandboxID)); err != nil {
		t.Fatal(err)
	}
	if got := e.rt.Stopped(); !slices.Equal(got, []string{testPod.SandboxID}) {
		t.Errorf("stopped %v, want the sandbox", got)
	}
	e.assertNoLeak()
}

func TestGCWaitsForAdd(t *testing.T) {
	e := newEnv(t, Config{}, map[string]string{"blue": fakecni.Conflist("blue", "1.1.0", "fakeplug")})
	e.fe.AddDelay["blue"] = 300 * time.Millisecond
	started := make(chan struct{})
	e.fe.OnAdd = func(fakecni.Call) { close(started) }
	done := make(chan error, 1)
	go func() {
		_, err := e.m.Attach(context.Background(), testPod, testNetNS, []Request{{Name: "blue", Interface: "net1"}})
		done <- err
	}()
	<-started
	if err := e.m.Reconcile(context.Background(), e.snap(testPod.SandboxID)); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	var add, gc fakecni.Call
	for _, c := range e.fe.Calls("") {
		switch c.Cmd {
		case "ADD":
			add = c
		case "GC":
			gc = c
		}
	}
	if gc.Start.Before(add.End) {
		t.Errorf("GC started at %v, before the ADD ended at %v", gc.Start, add.End)
	}
	if v := gc.Stdin["cni.dev/valid-attachments"].([]interface{}); len(v) != 1 {
		t.Errorf("valid attachments = %v, want the one being added", v)
	}
}

func TestObserverAndInUse(t *testing.T) {
	e := newEnv(t, Config{}, fakeNetworks("blue", "red"))
	if _, err := e.m.Attach(context.Background(), testPod, testNetNS, []Request{{Name: "blue", Interface: "net1"}, {Name: "red", Interface: "net2"}}); err != nil {
		t.Fatal(err)
	}
	m2 := e.restart(Config{})
	if got := e.obs.LastInUse(); got != 2 {
		t.Errorf("AttachmentsInUse after restart = %d, want 2", got)
	}
	if err := m2.Detach(context.Background(), testPod.SandboxID); err != nil {
		t.Fatal(err)
	}
	if a, d := e.obs.Attached("blue"), e.obs.Detached("blue"); len(a) != 1 || len(d) != 1 || d[0] != nil {
		t.Errorf("observer: attached %v detached %v", a, d)
	}
}
