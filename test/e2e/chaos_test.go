//go:build e2e

package e2e

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"sigs.k8s.io/pod-networks/internal/localcluster"
	"sigs.k8s.io/pod-networks/internal/poll"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// The chaos test's shape. Kill delays are uniform in [killMin, killMax):
// with ten pods starting at once on two cores, a RunPodSandbox call spends
// about a second in containerd and tens of milliseconds attaching, so kills
// this often land inside calls, some in the window between containerd's
// answer and the end of the attach.
const (
	chaosNode      = "node1"
	chaosWaves     = 4
	chaosWaveSize  = 10
	killMin        = 300 * time.Millisecond
	killMax        = 2500 * time.Millisecond
	waveTimeout    = 45 * time.Second  // a wave is deleted by then, Running or not
	finalTimeout   = 120 * time.Second // every pod Running after the chaos
	settleTimeout  = 150 * time.Second // the proxy's -reconcile-interval is 1m
	chaosSeedEnv   = "E2E_CHAOS_SEED"
	chaosPodPrefix = "chaos-"
)

const proxyDied = "connection lost during the call (proxy killed)"

// chaosSubnets are the subnets of net1 (blue) and net2 (red) on node1.
var chaosSubnets = map[string]string{"net1": "10.251.1.0/24", "net2": "10.252.1.0/24"}

// TestProxySurvivesCrashes creates and deletes pods asking for blue and red
// on node1 in waves while node1's CRI proxy is SIGKILLed at random moments
// (and started again), and node1's containerd is restarted once. Every pod
// seen Running with its container started must have net1 and net2 with
// addresses of blue and red inside it: a pod running with eth0 only (a
// sandbox the killed proxy never attached, reused by kubelet) fails the
// test. After the chaos every remaining pod must reach Running and pass the
// same check; once all pods are deleted, the node's leases, host links,
// network namespaces and proxy records must return to where they started.
// The kill delays come from a seed that is logged; E2E_CHAOS_SEED replays
// them.
func TestProxySurvivesCrashes(t *testing.T) {
	ctx := t.Context()
	started := time.Now()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(chaosSeedEnv); v != "" {
		s, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", chaosSeedEnv, v, err)
		}
		seed = s
	}
	t.Logf("chaos seed %d (replay the kill delays with %s=%d)", seed, chaosSeedEnv, seed)

	o := options(t)
	o.Nodes = 1
	o.CRIProxy = true
	dir := filepath.Join(t.TempDir(), chaosNode)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{"blue.conflist": blueNet, "red.conflist": redNet} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	o.NodeNetworks = map[string]string{chaosNode: dir}
	c := upCluster(t, o)
	cs := c.client(t)
	ck := &chaosChecker{t: t, c: c, cs: cs, start: time.Now(), checked: map[string]bool{}, violated: map[string]string{}}
	ck.logf("cluster up in %v; counts after bring-up: %v", c.ReadyAfter().Round(time.Millisecond), ck.state().Counts())

	// A first pod creates the networks' bridges, which stay: the starting
	// counts are taken once it is gone.
	ck.create("chaos-warmup")
	if err := ck.waitRunningAndCheck(ctx, []string{"chaos-warmup"}, 60*time.Second); err != nil {
		t.Fatalf("warm-up: %v", err)
	}
	ck.deleteAll()
	ck.waitPodsGone(ctx, 60*time.Second)
	baseline, ok := ck.waitSettled(ctx, func(s localcluster.NodeState) bool {
		return s.LeaseCount() == 0 && len(s.NetNS) == 0 && len(s.ProxyRecords) == 0 && len(s.ProxyIntents) == 0
	}, 90*time.Second)
	if !ok {
		t.Fatalf("the warm-up pod's leases, namespace or proxy records are still there 90s after its deletion: %v", baseline.Counts())
	}
	ck.logf("starting counts: %v", baseline.Counts())

	// The chaos: kills at random moments, containerd restarted once.
	ck.start = time.Now()
	ch := startChaos(ck, seed)
	defer ch.stop() // on t.Fatal too: no kill races Down
	for w := range chaosWaves {
		var names []string
		for i := range chaosWaveSize {
			names = append(names, fmt.Sprintf("%sw%d-%d", chaosPodPrefix, w+1, i))
		}
		for _, name := range names {
			ck.create(name)
		}
		if w == chaosWaves/2 {
			ch.restartContainerd <- struct{}{}
		}
		ck.logf("wave %d: %d pods created; counts %v", w+1, len(names), ck.state().Counts())
		// A wave ends when its pods are all Running and checked, or at
		// waveTimeout, Running or not: the chaos is meant to stop some.
		running := 0
		err := poll.Until(ctx, 250*time.Millisecond, waveTimeout, func(context.Context) error {
			// ctx, not the poll's: a round under way is not cut short.
			if err := ch.failed(); err != nil {
				return poll.Fatal(err)
			}
			if running = ck.checkRound(ctx, names); running < len(names) {
				return fmt.Errorf("%d/%d pods Running and checked", running, len(names))
			}
			return nil
		})
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s wave %d: %v", ck.since(time.Now()), w+1, err)
		}
		ck.logf("wave %d: %d/%d pods Running and checked", w+1, running, len(names))
		if w < chaosWaves-1 {
			// Networks must stay: check the wave's Running pods again.
			ck.recheck(ctx, names)
			ck.deleteAll()
			ck.logf("wave %d: pods deleted; counts %v", w+1, ck.state().Counts())
		}
	}
	ch.stop()
	ch.check()
	ck.logf("chaos over: %d proxy kills, containerd restarted at %s; counts %v", ch.kills, ch.restartedAt, ck.state().Counts())

	// The proxy runs; every remaining pod gets to Running and is checked.
	if err := c.StartProxy(ctx, chaosNode); err != nil && !strings.Contains(err.Error(), "is running") {
		t.Fatalf("proxy after the chaos: %v", err)
	}
	remaining := ck.podNames()
	if err := ck.waitRunningAndCheck(ctx, remaining, finalTimeout); err != nil {
		t.Errorf("after the chaos: %v", err)
	}
	ck.logf("after the chaos: %d pods Running, each checked inside once more; counts %v", len(remaining), ck.state().Counts())
	if interrupted := ck.summarizeSandboxFailures(ctx); interrupted == 0 {
		t.Errorf("no kill interrupted a RunPodSandbox call (no FailedCreatePodSandBox event says the connection was lost mid-call): the chaos proved nothing")
	}

	ck.deleteAll()
	ck.waitPodsGone(ctx, 60*time.Second)
	deleted := time.Now()
	ck.logf("all pods deleted; counts %v", ck.state().Counts())
	final, ok := ck.waitSettled(ctx, func(s localcluster.NodeState) bool { return s.Counts() == baseline.Counts() }, settleTimeout)
	if !ok {
		t.Errorf("%v after the pods were deleted, the node holds:\n  %v\nwhere it started with:\n  %v\ndifferences:\n  %s",
			settleTimeout, final.Counts(), baseline.Counts(), joinLines(baseline.Diff(final)))
	} else {
		ck.logf("counts back to the start %.1fs after the pods were deleted: %v", time.Since(deleted).Seconds(), final.Counts())
	}
	var pods []string // that ran without their networks
	for _, name := range ck.violated {
		if !slices.Contains(pods, name) {
			pods = append(pods, name)
		}
	}
	slices.Sort(pods)
	ck.logf("pods created %d, checks inside pods %d, execs that failed and were retried %d, pods running without their networks %d",
		ck.created, ck.checks, ck.execRetries, len(pods))
	if len(pods) > 0 {
		t.Errorf("%d pod(s) ran without net1/net2: %s (see the lines marked VIOLATION; seed %d)", len(pods), strings.Join(pods, ", "), seed)
	}
	c.downAndCompare(t, "chaos cluster up then down")
	t.Logf("test took %.0fs", time.Since(started).Seconds())
}

// chaos SIGKILLs and restarts node1's proxy at random moments until stopped,
// and restarts its containerd when asked.
type chaos struct {
	ck                *chaosChecker
	restartContainerd chan struct{}
	done, quit        chan struct{}
	once              sync.Once

	mu          sync.Mutex
	kills       int
	restartedAt string
	err         error
}

func startChaos(ck *chaosChecker, seed uint64) *chaos {
	ch := &chaos{ck: ck, restartContainerd: make(chan struct{}, 1), done: make(chan struct{}), quit: make(chan struct{})}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	go func() {
		defer close(ch.done)
		ctx := context.WithoutCancel(ck.t.Context())
		for {
			delay := killMin + time.Duration(rng.Int64N(int64(killMax-killMin)))
			select {
			case <-ch.quit:
				return
			case <-ch.restartContainerd:
				t0 := time.Now()
				err := ck.c.RestartContainerd(ctx, chaosNode)
				ch.mu.Lock()
				ch.restartedAt = ck.since(t0)
				ch.mu.Unlock()
				if err != nil {
					ch.fail(fmt.Errorf("restart containerd: %w", err))
					return
				}
				ck.logf("containerd restarted (took %.1fs)", time.Since(t0).Seconds())
				continue
			case <-time.After(delay):
				// This paces the chaos (a kill every delay), it waits
				// for nothing: a timer, not a poll.
			}
			if err := ck.c.KillProxy(chaosNode); err != nil {
				ch.fail(fmt.Errorf("kill proxy: %w", err))
				return
			}
			killed := time.Now()
			ch.mu.Lock()
			ch.kills++
			n := ch.kills
			ch.mu.Unlock()
			if err := ck.c.StartProxy(ctx, chaosNode); err != nil {
				ch.fail(fmt.Errorf("start proxy after kill %d: %w", n, err))
				return
			}
			ck.logf("proxy kill %d after %v; serving again %.2fs later", n, delay.Round(time.Millisecond), time.Since(killed).Seconds())
		}
	}()
	return ch
}

func (ch *chaos) fail(err error) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	ch.err = err
}

// failed returns why the chaos could not go on, if it could not.
func (ch *chaos) failed() error {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.err != nil {
		return fmt.Errorf("chaos stopped: %w", ch.err)
	}
	return nil
}

// check fails the test if the chaos could not go on (a proxy that did not
// come back is a finding, not noise).
func (ch *chaos) check() {
	if err := ch.failed(); err != nil {
		ch.ck.t.Fatalf("%s %v", ch.ck.since(time.Now()), err)
	}
}

// stop ends the chaos and waits for the goroutine: the proxy is running
// when stop returns, unless the chaos failed.
func (ch *chaos) stop() {
	ch.once.Do(func() { close(ch.quit) })
	<-ch.done
}

// chaosChecker creates the chaos pods and checks them from inside.
type chaosChecker struct {
	t     *testing.T
	c     *testCluster
	cs    kubernetes.Interface
	start time.Time

	mu sync.Mutex // logf is called from the chaos goroutine

	created, checks, execRetries int
	checked                      map[string]bool   // pod UID/container ID seen with both networks
	violated                     map[string]string // pod UID/container ID seen without them: pod name
}

// since formats t relative to the start of the chaos, with the wall clock
// for the component logs.
func (ck *chaosChecker) since(t time.Time) string {
	return fmt.Sprintf("T%+.2fs (%s)", t.Sub(ck.start).Seconds(), t.Format("15:04:05.000"))
}

func (ck *chaosChecker) logf(format string, args ...any) {
	ck.mu.Lock()
	defer ck.mu.Unlock()
	ck.t.Logf("%s %s", ck.since(time.Now()), fmt.Sprintf(format, args...))
}

func (ck *chaosChecker) state() localcluster.NodeState {
	s, err := ck.c.NodeState(chaosNode)
	if err != nil {
		ck.t.Fatalf("node state: %v", err)
	}
	return s
}

func (ck *chaosChecker) create(name string) {
	pod, err := ck.c.ToolboxPod(name, chaosNode)
	if err != nil {
		ck.t.Fatal(err)
	}
	pod.Labels["app"] = "chaos"
	pod.Spec.NodeSelector = nil
	pod.Spec.NodeName = chaosNode // past the scheduler: NotReady blips do not matter
	pod.Annotations = map[string]string{netrequest.AnnotationKey: "blue,red"}
	if _, err := ck.cs.CoreV1().Pods("default").Create(ck.t.Context(), pod, metav1.CreateOptions{}); err != nil {
		ck.t.Fatal(err)
	}
	ck.created++
}

func (ck *chaosChecker) pods(ctx context.Context) []corev1.Pod {
	list, err := ck.cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=chaos"})
	if err != nil {
		ck.t.Fatalf("list pods: %v", err)
	}
	return list.Items
}

func (ck *chaosChecker) podNames() []string {
	var names []string
	for _, p := range ck.pods(ck.t.Context()) {
		names = append(names, p.Name)
	}
	return names
}

// deleteAll deletes every chaos pod at once (grace 0: gone from the API at
// once; kubelet tears the sandboxes down behind).
func (ck *chaosChecker) deleteAll() {
	zero := int64(0)
	err := ck.cs.CoreV1().Pods("default").DeleteCollection(ck.t.Context(), metav1.DeleteOptions{GracePeriodSeconds: &zero},
		metav1.ListOptions{LabelSelector: "app=chaos"})
	if err != nil {
		ck.t.Fatalf("delete pods: %v", err)
	}
}

func (ck *chaosChecker) waitPodsGone(ctx context.Context, timeout time.Duration) {
	err := poll.Until(ctx, 250*time.Millisecond, timeout, func(context.Context) error {
		if left := ck.pods(ctx); len(left) > 0 {
			return fmt.Errorf("%d pods still there, e.g. %s (%s)", len(left), left[0].Name, podState(&left[0]))
		}
		return nil
	})
	if err != nil {
		ck.t.Fatalf("chaos pods not gone %v after their deletion: %v", timeout, err)
	}
}

// waitSettled polls the node's state until done accepts it or timeout
// passes, printing the counts whenever they change; it returns the last
// state and whether done accepted it.
func (ck *chaosChecker) waitSettled(ctx context.Context, done func(localcluster.NodeState) bool, timeout time.Duration) (localcluster.NodeState, bool) {
	var s localcluster.NodeState
	var last localcluster.Counts
	err := poll.Until(ctx, 500*time.Millisecond, timeout, func(context.Context) error {
		s = ck.state()
		if s.Counts() != last {
			last = s.Counts()
			ck.logf("  counts %v", last)
		}
		if !done(s) {
			return fmt.Errorf("node %s: counts %v", chaosNode, last)
		}
		return nil
	})
	return s, err == nil
}

// runningContainer returns the pod's container ID if the pod is Running,
// not being deleted, and its container has started.
func runningContainer(p *corev1.Pod) (string, bool) {
	if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning || len(p.Status.ContainerStatuses) != 1 {
		return "", false
	}
	cst := p.Status.ContainerStatuses[0]
	if cst.State.Running == nil || cst.Started == nil || !*cst.Started || cst.ContainerID == "" {
		return "", false
	}
	return cst.ContainerID, true
}

// checkRound checks, inside, each Running pod not checked yet in its
// current container, and returns how many of names are Running and
// checked.
func (ck *chaosChecker) checkRound(ctx context.Context, names []string) int {
	done := 0
	for _, p := range ck.pods(ctx) {
		cid, ok := runningContainer(&p)
		if !ok {
			continue
		}
		key := string(p.UID) + "/" + cid
		_, violated := ck.violated[key]
		if !ck.checked[key] && !violated {
			ck.checkPod(ctx, &p, cid)
		}
		_, violated = ck.violated[key]
		if (ck.checked[key] || violated) && slices.Contains(names, p.Name) {
			done++
		}
	}
	return done
}

// checkPod runs `ip -4 -o addr` in the pod. An exec that fails does not
// count (the pod may be going away, the proxy may be down: kubelet's Exec
// goes through it); the next round retries. A successful exec that shows
// net1 or net2 missing, or with an address outside its network's subnet,
// is a violation: it is logged with the pod, node, sandbox and what the
// pod showed, and fails the test at the end.
func (ck *chaosChecker) checkPod(ctx context.Context, p *corev1.Pod, cid string) bool {
	key := string(p.UID) + "/" + cid
	ectx, cancel := context.WithTimeout(ctx, 15*time.Second)
	at := time.Now()
	out, err := ck.c.Kubectl(ectx, "exec", "-n", p.Namespace, p.Name, "-c", p.Spec.Containers[0].Name, "--", "ip", "-4", "-o", "addr")
	cancel()
	if err != nil {
		ck.execRetries++
		return false
	}
	ck.checks++
	var problems []string
	for ifname, subnet := range chaosSubnets {
		addr := interfaceAddr(out, ifname)
		_, sn, _ := net.ParseCIDR(subnet)
		if ip := net.ParseIP(addr); ip == nil || !sn.Contains(ip) {
			problems = append(problems, fmt.Sprintf("%s has %q, want an address in %s", ifname, addr, subnet))
		}
	}
	if len(problems) == 0 {
		ck.checked[key] = true
		return true
	}
	slices.Sort(problems)
	if _, again := ck.violated[key]; again {
		ck.logf("VIOLATION again: pod %s, container %s, exec at %s: %s", p.Name, cid, ck.since(at), strings.Join(problems, "; "))
		return true
	}
	ck.violated[key] = p.Name
	sandbox, serr := ck.c.ContainerSandbox(ctx, p.Spec.NodeName, cid)
	if serr != nil {
		sandbox = "? (" + serr.Error() + ")"
	}
	records := ck.proxyRecordsOf(sandbox)
	after := "gone"
	if q, err := ck.cs.CoreV1().Pods(p.Namespace).Get(ctx, p.Name, metav1.GetOptions{}); err == nil && q.UID == p.UID {
		c2, running := runningContainer(q)
		after = fmt.Sprintf("phase %s, same container running: %t, deleting: %t", q.Status.Phase, running && c2 == cid, q.DeletionTimestamp != nil)
	} else if err != nil && !apierrors.IsNotFound(err) {
		after = err.Error()
	}
	ck.logf("VIOLATION: pod %s (uid %s) on %s, sandbox %s, container %s, exec at %s: %s\n  inside the pod:\n    %s\n  proxy records of the sandbox: %s\n  pod after the exec: %s",
		p.Name, p.UID, p.Spec.NodeName, sandbox, cid, ck.since(at), strings.Join(problems, "; "),
		strings.ReplaceAll(strings.TrimSpace(out), "\n", "\n    "), records, after)
	return true
}

// recheck checks the named pods that are Running once more; an exec that
// fails is not retried (the pod was checked before).
func (ck *chaosChecker) recheck(ctx context.Context, names []string) {
	n := 0
	for _, p := range ck.pods(ctx) {
		if cid, ok := runningContainer(&p); ok && slices.Contains(names, p.Name) {
			if ck.checkPod(ctx, &p, cid) {
				n++
			}
		}
	}
	ck.logf("checked %d Running pods once more", n)
}

// proxyRecordsOf names the proxy's records of a sandbox that exist.
func (ck *chaosChecker) proxyRecordsOf(sandbox string) string {
	var found []string
	dir := filepath.Join(ck.c.NodeList()[0].Dir, "cri-proxy")
	for _, p := range []string{filepath.Join(dir, sandbox+".json"), filepath.Join(dir, "intents", sandbox+".json")} {
		if b, err := os.ReadFile(p); err == nil {
			found = append(found, fmt.Sprintf("%s: %s", strings.TrimPrefix(p, dir+"/"), truncate(string(b), 300)))
		}
	}
	if len(found) == 0 {
		return "none"
	}
	return strings.Join(found, "; ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// waitRunningAndCheck waits until every named pod is Running with its
// container started and has been checked inside (retrying execs that
// fail), within timeout.
func (ck *chaosChecker) waitRunningAndCheck(ctx context.Context, names []string, timeout time.Duration) error {
	pending := map[string]bool{}
	for _, n := range names {
		pending[n] = true
	}
	err := poll.Until(ctx, 250*time.Millisecond, timeout, func(context.Context) error {
		state := map[string]string{}
		for _, p := range ck.pods(ctx) {
			if !pending[p.Name] {
				continue
			}
			cid, ok := runningContainer(&p)
			if ok && ck.checkPod(ctx, &p, cid) {
				delete(pending, p.Name)
				continue
			}
			state[p.Name] = podState(&p)
		}
		if len(pending) == 0 {
			return nil
		}
		var states []string
		for name := range pending {
			st, ok := state[name]
			if !ok {
				st = "not found"
			}
			states = append(states, name+": "+st)
		}
		slices.Sort(states)
		return fmt.Errorf("%d pod(s) not Running and checked:\n  %s", len(pending), joinLines(states))
	})
	if err != nil {
		return fmt.Errorf("pods not all Running and checked within %v: %w", timeout, err)
	}
	return nil
}

// podState describes where a pod is, for a timeout message.
func podState(p *corev1.Pod) string {
	s := string(p.Status.Phase)
	for _, c := range p.Status.ContainerStatuses {
		switch {
		case c.State.Waiting != nil:
			s += fmt.Sprintf(", %s waiting: %s %s", c.Name, c.State.Waiting.Reason, c.State.Waiting.Message)
		case c.State.Running != nil:
			s += fmt.Sprintf(", %s running", c.Name)
		}
	}
	return s
}

// summarizeSandboxFailures logs how many sandbox creations failed and why,
// grouped, and returns how many calls the kills interrupted.
func (ck *chaosChecker) summarizeSandboxFailures(ctx context.Context) int {
	evs, err := ck.cs.CoreV1().Events("default").List(ctx, metav1.ListOptions{FieldSelector: "reason=FailedCreatePodSandBox"})
	if err != nil {
		ck.t.Fatalf("list events: %v", err)
	}
	kinds := map[string]int{}
	total := 0
	for _, ev := range evs.Items {
		if !strings.HasPrefix(ev.InvolvedObject.Name, chaosPodPrefix) {
			continue
		}
		n := int(max(ev.Count, 1))
		total += n
		msg := ev.Message
		switch {
		case strings.Contains(msg, "error reading from server"), strings.Contains(msg, "connection reset"),
			strings.Contains(msg, "transport is closing"):
			msg = proxyDied
		case strings.Contains(msg, "cri-proxy.sock"):
			msg = "proxy down (kubelet could not connect)"
		case strings.Contains(msg, "containerd.sock"), strings.Contains(msg, "server is not initialized yet"):
			msg = "containerd restarting"
		default:
			msg = truncate(msg, 200)
		}
		kinds[msg] += n
	}
	ck.logf("FailedCreatePodSandBox events of the chaos pods: %d", total)
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		ck.logf("  %4d  %s", kinds[k], k)
	}
	return kinds[proxyDied]
}
