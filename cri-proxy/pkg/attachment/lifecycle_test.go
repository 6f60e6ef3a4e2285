package attachment

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/pod-networks/cri-proxy/internal/fakecni"
)

// podN is the pod of sandbox "sb-<n>": UID uid-<n>, attempt 0.
func podN(n string) PodRef {
	return PodRef{Namespace: "ns", Name: "pod-" + n, UID: "uid-" + n, SandboxID: "sb-" + n}
}

func kicked(m *Manager) bool {
	select {
	case <-m.Kicked():
		return true
	default:
		return false
	}
}

func TestIntentIsDurableAndSettles(t *testing.T) {
	e := newEnv(t, Config{}, fakeNetworks("blue"))
	reqs := []Request{{Name: "blue", Interface: "net1"}}
	in, err := e.m.Intend(podN("1"), reqs)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(e.stateDir, "intents", "uid-1_0.json")
	if _, err := os.Stat(file); err != nil {
		t.Fatalf("intent not on disk when Intend returned: %v", err)
	}
	if _, err := e.m.Intend(podN("1"), reqs); err == nil || !strings.Contains(err.Error(), "being made already") {
		t.Errorf("a second Intend for the same attempt in flight: %v, want a refusal", err)
	}
	if _, err := e.m.Intend(PodRef{Namespace: "ns", Name: "x", UID: "../x"}, reqs); err == nil || !strings.Contains(err.Error(), "uid") {
		t.Errorf("Intend with a bad uid: %v", err)
	}
	if err := in.Settle(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Errorf("intent still on disk after Settle: %v", err)
	}

	// Abandoned: kept, and a Reconcile is asked for.
	in, err = e.m.Intend(podN("2"), reqs)
	if err != nil {
		t.Fatal(err)
	}
	in.Abandon()
	if !kicked(e.m) {
		t.Error("Abandon did not ask for a Reconcile")
	}
	// A new call for the same attempt replaces it (kubelet retries attempt
	// 0 until a sandbox exists); settling the old one leaves the new one.
	again, err := e.m.Intend(podN("2"), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if err := in.Settle(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(e.stateDir, "intents", "uid-2_0.json")); err != nil {
		t.Errorf("the newer intent is gone: %v", err)
	}
	// A restarted process finds it, not in flight.
	m2 := e.restart(Config{})
	if !m2.wantsNetworks(Sandbox{ID: "sb-2", Pod: podN("2")}) || m2.attachedOrInFlight(Sandbox{ID: "sb-2", Pod: podN("2")}) {
		t.Error("after restart: the intent is not known, or is in flight")
	}
	_ = again
}

func TestAdmit(t *testing.T) {
	e := newEnv(t, Config{}, fakeNetworks("blue", "red"))
	ctx := context.Background()
	reqs := []Request{{Name: "blue", Interface: "net1"}}

	// Attached by this Manager: admitted.
	if _, err := e.m.Attach(ctx, podN("ok"), testNetNS, reqs); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Admit(ctx, podN("ok")); err != nil {
		t.Errorf("attached sandbox: %v", err)
	}

	// Unknown to this Manager (made while it was not running, or its record
	// was lost): refused and stopped.
	err := e.m.Admit(ctx, podN("unknown"))
	if !errors.Is(err, ErrNotAttached) || !strings.Contains(err.Error(), "ns/pod-unknown") || !strings.Contains(err.Error(), "stopped") {
		t.Errorf("unknown sandbox: %v", err)
	}

	// Its RunPodSandbox is still running here: refused, not stopped (the
	// call rolls back on its own).
	in, err := e.m.Intend(podN("busy"), reqs)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.m.Admit(ctx, podN("busy")); !errors.Is(err, ErrNotAttached) || !strings.Contains(err.Error(), "still being attached") {
		t.Errorf("in-flight sandbox: %v", err)
	}
	// Its call was cancelled, and the runtime made the sandbox anyway:
	// refused, stopped, intent settled.
	in.Abandon()
	if err := e.m.Admit(ctx, podN("busy")); !errors.Is(err, ErrNotAttached) {
		t.Errorf("abandoned sandbox: %v", err)
	}
	if _, err := os.Stat(filepath.Join(e.stateDir, "intents", "uid-busy_0.json")); !os.IsNotExist(err) {
		t.Errorf("intent of a stopped sandbox kept: %v", err)
	}

	// An interrupted Attach (record left attaching by a killed process):
	// refused, detached, stopped.
	rec := &record{Version: recordVersion, Pod: podN("half"), NetNS: testNetNS, State: stateAttaching, Attachments: []recordedAttachment{
		{Network: "red", Interface: "net1", Config: []byte(fakecni.Conflist("red", "1.0.0", "fakeplug"))},
	}}
	if err := writeRecord(e.stateDir, rec); err != nil {
		t.Fatal(err)
	}
	e.fe.SetActive("red", "sb-half", "net1")
	m2 := e.restart(Config{})
	if err := m2.Admit(ctx, podN("half")); !errors.Is(err, ErrNotAttached) {
		t.Errorf("half-attached sandbox: %v", err)
	}
	if got, want := e.rt.Stopped(), []string{"sb-unknown", "sb-busy", "sb-half"}; !slices.Equal(got, want) {
		t.Errorf("stopped %v, want %v", got, want)
	}
	if err := m2.Detach(ctx, "sb-ok"); err != nil {
		t.Fatal(err)
	}
	e.assertNoLeak()

	// A sandbox that cannot be stopped is named in the error.
	e.rt.err = errors.New("runtime is down")
	if err := m2.Admit(ctx, podN("down")); !errors.Is(err, ErrNotAttached) || !strings.Contains(err.Error(), "runtime is down") {
		t.Errorf("stop failure: %v", err)
	}
}

// Reconcile stops ready sandboxes that want networks and have none, which
// is what a proxy killed during RunPodSandbox leaves: for native pods only
// the intent tells, for annotated pods the runtime's copy of the
// annotation does too.
func TestReconcileStopsSandboxesWithoutTheirNetworks(t *testing.T) {
	e := newEnv(t, Config{IntentTTL: time.Hour}, fakeNetworks("blue"))
	ctx := context.Background()
	reqs := []Request{{Name: "blue", Interface: "net1"}}
	for _, n := range []string{"dead", "late", "nosandbox"} {
		if _, err := e.m.Intend(podN(n), reqs); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.m.Attach(ctx, podN("attached"), testNetNS, reqs); err != nil {
		t.Fatal(err)
	}
	m := e.restart(Config{IntentTTL: time.Hour}) // the intents are an earlier process's now
	if _, err := m.Intend(podN("inflight"), reqs); err != nil {
		t.Fatal(err)
	}
	e.advance(time.Minute)
	snap := Snapshot{Taken: e.clock(), Sandboxes: []Sandbox{
		{ID: "sb-dead", Pod: podN("dead"), Ready: true},                                // intent, no record: stop
		{ID: "sb-inflight", Pod: podN("inflight"), Ready: true},                        // its call runs here: keep
		{ID: "sb-attached", Pod: podN("attached"), Ready: true},                        // has its networks: keep
		{ID: "sb-annotated", Pod: podN("annotated"), Ready: true, WantsNetworks: true}, // stop
		{ID: "sb-plain", Pod: podN("plain"), Ready: true},                              // asked for nothing
		{ID: "sb-gone", Pod: podN("gone"), WantsNetworks: true},                        // not ready
	}}
	if err := m.Reconcile(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if got, want := e.rt.Stopped(), []string{"sb-dead", "sb-annotated"}; !slices.Equal(got, want) {
		t.Errorf("stopped %v, want %v", got, want)
	}
	intents := func() []string {
		files, _ := filepath.Glob(filepath.Join(e.stateDir, "intents", "*.json"))
		var out []string
		for _, f := range files {
			out = append(out, filepath.Base(f))
		}
		return out
	}
	// late's sandbox may still appear (its call may still be in the
	// runtime), nosandbox's too: both kept within the TTL.
	if got, want := intents(), []string{"uid-inflight_0.json", "uid-late_0.json", "uid-nosandbox_0.json"}; !slices.Equal(got, want) {
		t.Errorf("intents = %v, want %v", got, want)
	}
	// late's sandbox appears in a later list: stopped.
	snap = Snapshot{Taken: e.clock(), Sandboxes: []Sandbox{{ID: "sb-late", Pod: podN("late"), Ready: true}}}
	if err := m.Reconcile(ctx, snap); err != nil {
		t.Fatal(err)
	}
	if got := e.rt.Stopped(); !slices.Contains(got, "sb-late") {
		t.Errorf("stopped %v, want sb-late too", got)
	}
	// After the TTL, an intent whose sandbox never appeared goes.
	e.advance(2 * time.Hour)
	if err := m.Reconcile(ctx, Snapshot{Taken: e.clock()}); err != nil {
		t.Fatal(err)
	}
	if got, want := intents(), []string{"uid-inflight_0.json"}; !slices.Equal(got, want) {
		t.Errorf("intents = %v, want %v", got, want)
	}
}

// A stop that fails keeps the intent, so the next Reconcile retries.
func TestReconcileKeepsIntentWhenStopFails(t *testing.T) {
	e := newEnv(t, Config{}, fakeNetworks("blue"))
	in, err := e.m.Intend(podN("1"), []Request{{Name: "blue", Interface: "net1"}})
	if err != nil {
		t.Fatal(err)
	}
	in.Abandon()
	e.rt.err = errors.New("runtime is down")
	snap := Snapshot{Taken: e.clock(), Sandboxes: []Sandbox{{ID: "sb-1", Pod: podN("1"), Ready: true}}}
	if err := e.m.Reconcile(context.Background(), snap); err == nil || !strings.Contains(err.Error(), "runtime is down") {
		t.Fatalf("Reconcile = %v, want the stop failure", err)
	}
	e.rt.err = nil
	if err := e.m.Reconcile(context.Background(), snap); err != nil {
		t.Fatal(err)
	}
	if got := e.rt.Stopped(); !slices.Equal(got, []string{"sb-1"}) {
		t.Errorf("stopped %v, want sb-1", got)
	}
	e.assertNoLeak()
}

// A record is judged against the time its list was taken: an attach that
// started after the list and took long is not detached from its live pod.
func TestReconcileJudgesAgainstTheListsTime(t *testing.T) {
	e := newEnv(t, Config{}, fakeNetworks("blue"))
	taken := e.clock()
	e.advance(time.Millisecond)
	started := make(chan struct{})
	release := make(chan struct{})
	e.fe.OnAdd = func(fakecni.Call) { close(started); <-release }
	done := make(chan error, 1)
	go func() {
		_, err := e.m.Attach(context.Background(), testPod, testNetNS, []Request{{Name: "blue", Interface: "net1"}})
		done <- err
	}()
	<-started
	e.advance(time.Hour) // however long it takes
	close(release)
	if err := e.m.Reconcile(context.Background(), Snapshot{Taken: taken}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := e.m.Attachments(testPod.SandboxID); len(got) != 1 {
		t.Fatalf("attachments of a sandbox newer than the list: %v, want kept", got)
	}
	if len(e.rt.Stopped()) != 0 {
		t.Errorf("stopped %v", e.rt.Stopped())
	}
}

// Stop and Remove must reach the runtime within kubelet's deadline: a
// Detach gives up waiting for the sandbox's lock, or on a DEL that hangs,
// when its context ends, and leaves the attachments to Reconcile.
func TestDetachGivesUpAndReconcileFinishes(t *testing.T) {
	e := newEnv(t, Config{}, fakeNetworks("blue", "red"))
	ctx := context.Background()
	if _, err := e.m.Attach(ctx, testPod, testNetNS, []Request{{Name: "blue", Interface: "net1"}, {Name: "red", Interface: "net2"}}); err != nil {
		t.Fatal(err)
	}
	hang := true
	e.fe.Set(func(f *fakecni.Exec) {
		f.OnDel = func(ctx context.Context, c fakecni.Call) {
			if hang && c.Network == "red" {
				<-ctx.Done()
			}
		}
	})
	dctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	err := e.m.Detach(dctx, testPod.SandboxID)
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), `network "red"`) {
		t.Fatalf("Detach = %v, want red's DEL cut off by the deadline", err)
	}
	if !kicked(e.m) {
		t.Error("a failed Detach did not ask for a Reconcile")
	}
	if got := e.m.Attachments(testPod.SandboxID); len(got) != 1 || got[0].Network != "red" {
		t.Fatalf("Attachments() = %v, want red kept for a retry", got)
	}
	// Waiting for the sandbox's lock is bounded the same way.
	unlock, err := e.m.lockSandbox(ctx, testPod.SandboxID)
	if err != nil {
		t.Fatal(err)
	}
	lctx, lcancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer lcancel()
	if err := e.m.Detach(lctx, testPod.SandboxID); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Detach while the sandbox is locked = %v, want a deadline error", err)
	}
	unlock()
	e.fe.Set(func(*fakecni.Exec) { hang = false })
	if err := e.m.Reconcile(ctx, e.snap()); err != nil {
		t.Fatal(err)
	}
	e.assertNoLeak()
}
