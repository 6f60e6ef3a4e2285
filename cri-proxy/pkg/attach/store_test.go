package attach

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func newTestStore(t *testing.T, dir string, fe *fakeExec, obs Observer) *Store {
	t.Helper()
	s, err := NewStore(StoreConfig{Dir: dir, BinDirs: []string{"/fake/bin"}, Exec: fe, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestStoreSkipsInvalidFiles(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "10-blue.conflist", conflist("blue", "1.0.0", "fakeplug"))
	writeFile(t, dir, "20-broken.conflist", `{"cniVersion": "1.0.0", "name": `)
	writeFile(t, dir, "30-noname.conflist", `{"cniVersion": "1.0.0", "plugins": [{"type": "fakeplug"}]}`)
	writeFile(t, dir, "40-badname.conflist", conflist("Blue_Net", "1.0.0", "fakeplug"))
	writeFile(t, dir, "50-dup.conflist", conflist("blue", "1.0.0", "otherplug"))
	writeFile(t, dir, "60-red.json", conflist("red", "1.0.0", "fakeplug"))
	writeFile(t, dir, "70-green.json", `{"cniVersion": "1.0.0", "name": "green", "type": "fakeplug"}`)
	writeFile(t, dir, "80-noplugins.conflist", `{"cniVersion": "1.0.0", "name": "empty", "plugins": []}`)
	writeFile(t, dir, "notes.txt", "not a config")
	writeFile(t, dir, ".99-hidden.conflist", conflist("hidden", "1.0.0", "fakeplug"))

	obs := newRecordingObserver()
	s := newTestStore(t, dir, newFakeExec(), obs)
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
	if len(obs.configErrors) != len(wantErrs) {
		t.Errorf("config errors = %v, want one for each of %v", obs.configErrors, wantErrs)
	}
	for file, want := range wantErrs {
		got := obs.configErrors[file]
		if len(got) != 1 || !strings.Contains(got[0], want) {
			t.Errorf("config errors of %s = %q, want one containing %q", file, got, want)
		}
	}

	// Fixing a file makes its network appear; breaking it differently is
	// reported again.
	writeFile(t, dir, "20-broken.conflist", conflist("yellow", "1.0.0", "fakeplug"))
	writeFile(t, dir, "30-noname.conflist", `{"cniVersion": "1.0.0", "name": "x", "plugins": "nope"}`)
	s.Refresh(ctx)
	if got, want := s.Available(), []string{"blue", "green", "red", "yellow"}; !slices.Equal(got, want) {
		t.Fatalf("Available() = %v, want %v", got, want)
	}
	if got := obs.configErrors["30-noname.conflist"]; len(got) != 2 {
		t.Errorf("config errors of 30-noname.conflist = %q, want a second, different one", got)
	}
}

func TestStoreAvailability(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.conflist", conflist("alpha", "1.1.0", "fakeplug"))
	writeFile(t, dir, "b.conflist", conflist("beta", "1.0.0", "fakeplug", "missingplug"))
	writeFile(t, dir, "c.conflist", conflist("gamma", "1.1.0", "fakeplug"))
	writeFile(t, dir, "d.conflist", conflist("delta", "1.0.0", "fakeplug"))
	writeFile(t, dir, "e.conflist", `{"cniVersion": "1.0.0", "name": "epsilon", "plugins": [{"type": "fakeplug", "ipam": {"type": "missingipam"}}]}`)
	fe := newFakeExec()
	fe.missing["missingplug"] = true
	fe.missing["missingipam"] = true
	fe.statusErr["gamma"] = "no addresses left"
	fe.statusErr["delta"] = "never asked: STATUS needs cniVersion 1.1.0"
	s := newTestStore(t, dir, fe, nil)
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
	if got := len(fe.callsOf("STATUS")); got != 2 {
		t.Errorf("STATUS calls = %d, want 2 (the 1.1.0 networks only)", got)
	}

	fe.set(func(f *fakeExec) { delete(f.missing, "missingplug"); delete(f.statusErr, "gamma") })
	s.Refresh(context.Background())
	if got, want := s.Available(), []string{"alpha", "beta", "delta", "gamma"}; !slices.Equal(got, want) {
		t.Fatalf("after the plugin appeared: Available() = %v, want %v", got, want)
	}
}

func TestStoreOnChange(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "a.conflist", conflist("alpha", "1.0.0", "fakeplug"))
	s := newTestStore(t, dir, newFakeExec(), nil)
	var mu sync.Mutex
	var got [][]string
	s.OnChange(func(a []string) { mu.Lock(); got = append(got, a); mu.Unlock() })
	ctx := context.Background()

	s.Refresh(ctx)
	s.Refresh(ctx)
	writeFile(t, dir, "b.conflist", conflist("beta", "1.0.0", "fakeplug"))
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

func TestStoreEmptyFirstRefreshNotifies(t *testing.T) {
	s := newTestStore(t, filepath.Join(t.TempDir(), "does-not-exist"), newFakeExec(), nil)
	calls := 0
	s.OnChange(func([]string) { calls++ })
	s.Refresh(context.Background())
	s.Refresh(context.Background())
	if calls != 1 {
		t.Fatalf("OnChange calls = %d, want 1: a node without networks must publish that once", calls)
	}
}

func TestStoreWatchesDir(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "networks") // created later
	s, err := NewStore(StoreConfig{Dir: dir, BinDirs: []string{"/fake/bin"}, Exec: newFakeExec(), ResyncInterval: 200 * time.Millisecond})
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
	writeFile(t, dir, "a.conflist", conflist("alpha", "1.0.0", "fakeplug"))
	wait("alpha")

	// With the resync far away, a file event alone must be enough.
	s2, _ := NewStore(StoreConfig{Dir: dir, BinDirs: []string{"/fake/bin"}, Exec: newFakeExec(), ResyncInterval: time.Hour})
	changes2 := make(chan []string, 16)
	s2.OnChange(func(a []string) { changes2 <- a })
	s2.Start(ctx)
	<-changes2
	start := time.Now()
	writeFile(t, dir, "b.conflist", conflist("beta", "1.0.0", "fakeplug"))
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
