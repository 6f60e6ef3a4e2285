package catalog

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/pod-networks/cri-proxy/internal/fakecni"
)

func newTestCatalog(t *testing.T, dir string, fe *fakecni.Exec, obs Observer) *Catalog {
	t.Helper()
	s, err := New(Config{Dir: dir, BinDirs: []string{"/fake/bin"}, Exec: fe, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCatalogSkipsInvalidFiles(t *testing.T) {
	dir := t.TempDir()
	fakecni.WriteFile(t, dir, "10-blue.conflist", fakecni.Conflist("blue", "1.0.0", "fakeplug"))
	fakecni.WriteFile(t, dir, "20-broken.conflist", `{"cniVersion": "1.0.0", "name": `)
	fakecni.WriteFile(t, dir, "30-noname.conflist", `{"cniVersion": "1.0.0", "plugins": [{"type": "fakeplug"}]}`)
	fakecni.WriteFile(t, dir, "40-badname.conflist", fakecni.Conflist("Blue_Net", "1.0.0", "fakeplug"))
	fakecni.WriteFile(t, dir, "50-dup.conflist", fakecni.Conflist("blue", "1.0.0", "otherplug"))
	fakecni.WriteFile(t, dir, "60-red.json", fakecni.Conflist("red", "1.0.0", "fakeplug"))
	fakecni.WriteFile(t, dir, "70-green.json", `{"cniVersion": "1.0.0", "name": "green", "type": "fakeplug"}`)
	fakecni.WriteFile(t, dir, "80-noplugins.conflist", `{"cniVersion": "1.0.0", "name": "empty", "plugins": []}`)
	fakecni.WriteFile(t, dir, "notes.txt", "not a config")
	fakecni.WriteFile(t, dir, ".99-hidden.conflist", fakecni.Conflist("hidden", "1.0.0", "fakeplug"))

	obs := fakecni.NewObserver()
	s := newTestCatalog(t, dir, fakecni.New(), obs)
	ctx := context.Background()
	s.Refresh(ctx)
	s.Refresh(ctx) // errors are reported once, not on every refresh

	if got, want := s.Available(), []string{"blue", "green", "red"}; !slices.Equal(got, want) {
		t.Fatalf("Available() = %v, want %v", got, want)
	}
	blue, ok := s.Lookup("blue")
	if !ok || filepath.Base(blue.File) != "10-blue.conflist" {
		t.Fatalf("Lookup(blue) = %+v, %v: want the lexically first file", blue, ok)
	}
	wantErrs := map[string]string{
		"20-broken.conflist":    "error parsing configuration",
		"30-noname.conflist":    "no name",
		"40-badname.conflist":   "not a DNS-1123 label",
		"50-dup.conflist":       "already defined by",
		"80-noplugins.conflist": "no plugins",
	}
	if len(obs.ConfigErrors()) != len(wantErrs) {
		t.Errorf("config errors = %v, want one for each of %v", obs.ConfigErrors(), wantErrs)
	}
	for file, want := range wantErrs {
		got := obs.ConfigErrors()[file]
		if len(got) != 1 || !strings.Contains(got[0], want) {
			t.Errorf("config errors of %s = %q, want one containing %q", file, got, want)
		}
	}

	// Fixing a file makes its network appear; breaking it differently is
	// reported again.
	fakecni.WriteFile(t, dir, "20-broken.conflist", fakecni.Conflist("yellow", "1.0.0", "fakeplug"))
	fakecni.WriteFile(t, dir, "30-noname.conflist", `{"cniVersion": "1.0.0", "name": "x", "plugins": "nope"}`)
	s.Refresh(ctx)
	if got, want := s.Available(), []string{"blue", "green", "red", "yellow"}; !slices.Equal(got, want) {
		t.Fatalf("Available() = %v, want %v", got, want)
	}
	if got := obs.ConfigErrors()["30-noname.conflist"]; len(got) != 2 {
		t.Errorf("config errors of 30-noname.conflist = %q, want a second, different one", got)
	}
}

func TestCatalogAvailability(t *testing.T) {
	dir := t.TempDir()
	fakecni.WriteFile(t, dir, "a.conflist", fakecni.Conflist("alpha", "1.1.0", "fakeplug"))
	fakecni.WriteFile(t, dir, "b.conflist", fakecni.Conflist("beta", "1.0.0", "fakeplug", "missingplug"))
	fakecni.WriteFile(t, dir, "c.conflist", fakecni.Conflist("gamma", "1.1.0", "fakeplug"))
	fakecni.WriteFile(t, dir, "d.conflist", fakecni.Conflist("delta", "1.0.0", "fakeplug"))
	fakecni.WriteFile(t, dir, "e.conflist", `{"cniVersion": "1.0.0", "name": "epsilon", "plugins": [{"type": "fakeplug", "ipam": {"type": "missingipam"}}]}`)
	fe := fakecni.New()
	fe.Missing["missingplug"] = true
	fe.Missing["missingipam"] = true
	fe.StatusErr["gamma"] = "no addresses left"
	fe.StatusErr["delta"] = "never asked: STATUS needs cniVersion 1.1.0"
	s := newTestCatalog(t, dir, fe, nil)
	s.Refresh(context.Background())

	if got, want := s.Available(), []string{"alpha", "delta"}; !slices.Equal(got, want) {
		t.Fatalf("Available() = %v, want %v", got, want)
	}
	for name, want := range map[string]string{"beta": "missingplug", "gamma": "no addresses left", "epsilon": "missingipam"} {
		n, ok := s.Lookup(name)
		if !ok || n.Available || n.Err == nil || !strings.Contains(n.Err.Error(), want) {
			t.Errorf("Lookup(%s) = %+v, want unavailable because of %q", name, n, want)
		}
	}
	if got := len(fe.Calls("STATUS")); got != 2 {
		t.Errorf("STATUS calls = %d, want 2 (the 1.1.0 networks only)", got)
	}

	fe.Set(func(f *fakecni.Exec) { delete(f.Missing, "missingplug"); delete(f.StatusErr, "gamma") })
	s.Refresh(context.Background())
	if got, want := s.Available(), []string{"alpha", "beta", "delta", "gamma"}; !slices.Equal(got, want) {
		t.Fatalf("after the plugin appeared: Available() = %v, want %v", got, want)
	}
}

func TestCatalogOnChange(t *testing.T) {
	dir := t.TempDir()
	fakecni.WriteFile(t, dir, "a.conflist", fakecni.Conflist("alpha", "1.0.0", "fakeplug"))
	s := newTestCatalog(t, dir, fakecni.New(), nil)
	var mu sync.Mutex
	var got [][]string
	s.OnChange(func(a []string) { mu.Lock(); got = append(got, a); mu.Unlock() })
	ctx := context.Background()

	s.Refresh(ctx)
	s.Refresh(ctx)
	fakecni.WriteFile(t, dir, "b.conflist", fakecni.Conflist("beta", "1.0.0", "fakeplug"))
	s.Refresh(ctx)
	s.Refresh(ctx)
	os.Remove(filepath.Join(dir, "a.conflist"))
	os.Remove(filepath.Join(dir, "b.conflist"))
	s.Refresh(ctx)

	want := [][]string{{"alpha"}, {"alpha", "beta"}, {}}
	mu.Lock()
	defer mu.Unlock()
	if !slices.EqualFunc(got, want, func(a, b []string) bool { return slices.Equal(a, b) }) {
		t.Fatalf("notifications = %q, want %q", got, want)
	}

	var late []string
	s.OnChange(func(a []string) { late = a })
	if late == nil || len(late) != 0 {
		t.Fatalf("a late subscriber got %v, want the current (empty) set at once", late)
	}
}

func TestCatalogEmptyFirstRefreshNotifies(t *testing.T) {
	s := newTestCatalog(t, filepath.Join(t.TempDir(), "does-not-exist"), fakecni.New(), nil)
	calls := 0
	s.OnChange(func([]string) { calls++ })
	s.Refresh(context.Background())
	s.Refresh(context.Background())
	if calls != 1 {
		t.Fatalf("OnChange calls = %d, want 1: a node without networks must publish that once", calls)
	}
}

func TestCatalogWatchesDir(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "networks") // created later
	s, err := New(Config{Dir: dir, BinDirs: []string{"/fake/bin"}, Exec: fakecni.New(), ResyncInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	changes := make(chan []string, 16)
	s.OnChange(func(a []string) { changes <- a })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s.Start(ctx)
	if a := <-changes; len(a) != 0 {
		t.Fatalf("first notification %v, want none available", a)
	}

	wait := func(want ...string) {
		t.Helper()
		deadline := time.After(10 * time.Second)
		for {
			select {
			case a := <-changes:
				if slices.Equal(a, want) {
					return
				}
			case <-deadline:
				t.Fatalf("no notification of %v; Available() = %v", want, s.Available())
			}
		}
	}
	// The dir appears: picked up by the resync, then watched.
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	fakecni.WriteFile(t, dir, "a.conflist", fakecni.Conflist("alpha", "1.0.0", "fakeplug"))
	wait("alpha")

	// With the resync far away, a file event alone must be enough.
	s2, _ := New(Config{Dir: dir, BinDirs: []string{"/fake/bin"}, Exec: fakecni.New(), ResyncInterval: time.Hour})
	changes2 := make(chan []string, 16)
	s2.OnChange(func(a []string) { changes2 <- a })
	s2.Start(ctx)
	<-changes2
	start := time.Now()
	fakecni.WriteFile(t, dir, "b.conflist", fakecni.Conflist("beta", "1.0.0", "fakeplug"))
	select {
	case a := <-changes2:
		if !slices.Equal(a, []string{"alpha", "beta"}) {
			t.Fatalf("got %v", a)
		}
		t.Logf("file event to notification: %v", time.Since(start))
	case <-time.After(10 * time.Second):
		t.Fatal("no notification after a file was written")
	}
}

// A network that shares its name or a host-local lease dir with the
// runtime's own (primary) network is refused, naming both.
func TestCatalogRefusesRuntimeNetworkCollisions(t *testing.T) {
	runtimeDir, dir := t.TempDir(), t.TempDir()
	fakecni.WriteFile(t, runtimeDir, "10-primary.conflist", `{"cniVersion": "1.0.0", "name": "primary", "plugins": [
		{"type": "bridge", "ipam": {"type": "host-local", "dataDir": "/var/lib/node1/ipam"}}]}`)
	fakecni.WriteFile(t, runtimeDir, "20-default.conf", `{"cniVersion": "1.0.0", "name": "legacy", "type": "bridge", "ipam": {"type": "host-local"}}`)
	fakecni.WriteFile(t, dir, "a.conflist", `{"cniVersion": "1.0.0", "name": "primary", "plugins": [{"type": "fakeplug"}]}`)
	// Its lease dir, /var/lib/node1/primary... contains primary's leases.
	fakecni.WriteFile(t, dir, "b.conflist", `{"cniVersion": "1.0.0", "name": "node1", "plugins": [
		{"type": "fakeplug", "ipam": {"type": "host-local", "dataDir": "/var/lib"}}]}`)
	// Its leases would live inside the default dir of "legacy".
	fakecni.WriteFile(t, dir, "c.conflist", `{"cniVersion": "1.0.0", "name": "blue", "plugins": [
		{"type": "fakeplug", "ipam": {"type": "host-local", "dataDir": "/var/lib/cni/networks/legacy"}}]}`)
	fakecni.WriteFile(t, dir, "d.conflist", `{"cniVersion": "1.0.0", "name": "red", "plugins": [
		{"type": "fakeplug", "ipam": {"type": "host-local", "dataDir": "/var/lib/node1/ipam"}}]}`)
	obs := fakecni.NewObserver()
	c, err := New(Config{Dir: dir, RuntimeConfDir: runtimeDir, BinDirs: []string{"/fake/bin"}, Exec: fakecni.New(), Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	c.Refresh(context.Background())
	// red shares primary's dataDir, not its lease dir (<dataDir>/<name>).
	if got := c.Available(); !slices.Equal(got, []string{"red"}) {
		t.Errorf("Available() = %v, want [red]", got)
	}
	for file, want := range map[string][]string{
		"a.conflist": {`network "primary"`, "same name", "10-primary.conflist"},
		"b.conflist": {"/var/lib/node1", "/var/lib/node1/ipam/primary", `"primary"`},
		"c.conflist": {"/var/lib/cni/networks/legacy/blue", `"legacy"`, "20-default.conf"},
	} {
		errs := obs.ConfigErrors()[file]
		if len(errs) != 1 {
			t.Errorf("%s: errors %q, want one", file, errs)
			continue
		}
		for _, w := range want {
			if !strings.Contains(errs[0], w) {
				t.Errorf("%s: error %q does not mention %q", file, errs[0], w)
			}
		}
	}
	if _, err := New(Config{Dir: runtimeDir + "/", RuntimeConfDir: runtimeDir, BinDirs: []string{"/b"}}); err == nil || !strings.Contains(err.Error(), "runtime's CNI conf dir") {
		t.Errorf("New with the runtime's conf dir as networks dir: %v, want a refusal", err)
	}
}
