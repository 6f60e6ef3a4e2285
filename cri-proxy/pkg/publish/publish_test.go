package publish

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
	metadatafake "k8s.io/client-go/metadata/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/util/workqueue"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/attachment"
	"sigs.k8s.io/pod-networks/internal/poll"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// patches counts PATCH calls, by object name, and can fail the first n.
type patches struct {
	mu     sync.Mutex
	byName map[string]int
	fail   int
}

func (p *patches) get(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byName[name]
}

func (p *patches) reactor(a k8stesting.Action) (bool, runtime.Object, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.byName == nil {
		p.byName = map[string]int{}
	}
	p.byName[a.(k8stesting.PatchAction).GetName()]++
	if p.fail > 0 {
		p.fail--
		return true, nil, errors.New("apiserver unavailable")
	}
	return false, nil, nil // let the tracker apply it
}

// object is what the metadata client sees of a node or a pod.
func object(kind, namespace, name, uid string, annotations map[string]string) *metav1.PartialObjectMetadata {
	return &metav1.PartialObjectMetadata{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: kind},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, UID: types.UID(uid), Annotations: annotations}}
}

func newClient(objects ...runtime.Object) *metadatafake.FakeMetadataClient {
	scheme := metadatafake.NewTestScheme()
	for _, kind := range []string{"Node", "Pod"} {
		scheme.AddKnownTypeWithName(schema.GroupVersionKind{Version: "v1", Kind: kind}, &metav1.PartialObjectMetadata{})
		scheme.AddKnownTypeWithName(schema.GroupVersionKind{Version: "v1", Kind: kind + "List"}, &metav1.PartialObjectMetadataList{})
	}
	return metadatafake.NewSimpleMetadataClient(scheme, objects...)
}

// waitFor polls cond, failing the test if it is not done within 10 s.
func waitFor(t *testing.T, what string, cond poll.Condition) {
	t.Helper()
	if err := poll.Until(t.Context(), 5*time.Millisecond, 10*time.Second, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
}

// annotationIs is done once the object's annotation key is want.
func annotationIs(t *testing.T, c *metadatafake.FakeMetadataClient, gvr schema.GroupVersionResource, namespace, name, key, want string) poll.Condition {
	return func(context.Context) error {
		if got := annotation(t, c, gvr, namespace, name, key); got != want {
			return fmt.Errorf("%s is %q", key, got)
		}
		return nil
	}
}

// nodeAnnotationIs is done once node1's network annotation is want.
func nodeAnnotationIs(t *testing.T, c *metadatafake.FakeMetadataClient, want string) poll.Condition {
	return annotationIs(t, c, Nodes, "", "node1", netrequest.AnnotationKey, want)
}

func annotation(t *testing.T, c *metadatafake.FakeMetadataClient, gvr schema.GroupVersionResource, namespace, name, key string) string {
	t.Helper()
	o, err := c.Resource(gvr).Namespace(namespace).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		return ""
	}
	return o.Annotations[key]
}

func TestNodePublishesOncePerChange(t *testing.T) {
	c := newClient(object("Node", "", "node1", "", nil))
	p := &patches{fail: 2}
	c.PrependReactor("patch", "nodes", p.reactor)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := NewNode(c, "node1")
	go n.Run(ctx)

	n.Set([]string{"red", "blue"})
	waitFor(t, "the first value after two failed PATCHes", nodeAnnotationIs(t, c, "blue,red"))
	if got := p.get("node1"); got != 3 {
		t.Errorf("PATCH calls = %d, want 3 (two failures, one success)", got)
	}
	n.Set([]string{"blue", "red"}) // same set: steady state
	n.Set([]string{"green"})
	waitFor(t, "the changed value", nodeAnnotationIs(t, c, "green"))
	n.Set([]string{"green"})
	n.Set([]string{"yellow"}) // values are published in order: a barrier
	waitFor(t, "the last value", nodeAnnotationIs(t, c, "yellow"))
	if got := p.get("node1"); got != 5 {
		t.Errorf("PATCH calls = %d, want 5: one per change, none for an unchanged set", got)
	}
}

func TestNodeSkipsPatchWhenAnnotationAlreadyRight(t *testing.T) {
	c := newClient(object("Node", "", "node1", "", map[string]string{netrequest.AnnotationKey: "blue"}))
	p := &patches{}
	c.PrependReactor("patch", "nodes", p.reactor)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := NewNode(c, "node1")
	go n.Run(ctx)
	n.Set([]string{"blue"})
	n.Set([]string{"red"})
	waitFor(t, "the next value", nodeAnnotationIs(t, c, "red"))
	if got := p.get("node1"); got != 1 {
		t.Errorf("PATCH calls = %d, want 1 (red): the node already had blue", got)
	}
}

func TestNodeWaitsForRegistration(t *testing.T) {
	c := newClient()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := NewNode(c, "node1")
	go n.Run(ctx)
	n.Set([]string{"blue"})
	waitFor(t, "two failed GETs: the node is not registered yet", func(context.Context) error {
		gets := 0
		for _, a := range c.Actions() {
			if a.GetVerb() == "get" {
				gets++
			}
		}
		if gets < 2 {
			return fmt.Errorf("%d GETs", gets)
		}
		return nil
	})
	if _, err := c.Resource(Nodes).(metadatafake.MetadataClient).CreateFake(object("Node", "", "node1", "", nil), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the annotation on the registered node", nodeAnnotationIs(t, c, "blue"))
}

// podPatches records the PATCH calls to pods, in front of the fake client:
// the fake serializes every call under one lock, so a call held in one of
// its reactors would hold up all the others. result, if set, runs with the
// call's 1-based number for that pod name (it may block); its error fails
// the call before it reaches the fake.
type podPatches struct {
	mu     sync.Mutex
	calls  map[string][]string // by pod name, the status each PATCH carried
	uids   map[string][]string // by pod name, the UID each PATCH named
	result func(name, uid string, call int) error
}

func (p *podPatches) before(name string, data []byte) error {
	var patch struct {
		Metadata struct {
			UID         string            `json:"uid"`
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(data, &patch); err != nil {
		return err
	}
	p.mu.Lock()
	if p.calls == nil {
		p.calls, p.uids = map[string][]string{}, map[string][]string{}
	}
	p.calls[name] = append(p.calls[name], patch.Metadata.Annotations[netrequest.StatusAnnotationKey])
	p.uids[name] = append(p.uids[name], patch.Metadata.UID)
	n := len(p.calls[name])
	p.mu.Unlock()
	if p.result != nil {
		return p.result(name, patch.Metadata.UID, n)
	}
	return nil
}

// client is c with p in front of its PATCH calls.
func (p *podPatches) client(c metadata.Interface) metadata.Interface {
	return patchedClient{c, p}
}

type patchedClient struct {
	metadata.Interface
	p *podPatches
}

func (c patchedClient) Resource(r schema.GroupVersionResource) metadata.Getter {
	return patchedResource{c.Interface.Resource(r), c.p}
}

type patchedResource struct {
	metadata.Getter
	p *podPatches
}

func (r patchedResource) Namespace(ns string) metadata.ResourceInterface {
	return patchedNamespaced{r.Getter.Namespace(ns), r.p}
}

type patchedNamespaced struct {
	metadata.ResourceInterface
	p *podPatches
}

func (r patchedNamespaced) Patch(ctx context.Context, name string, pt types.PatchType, data []byte, opts metav1.PatchOptions, sub ...string) (*metav1.PartialObjectMetadata, error) {
	if err := r.p.before(name, data); err != nil {
		return nil, err
	}
	return r.ResourceInterface.Patch(ctx, name, pt, data, opts, sub...)
}

// statuses is what the PATCH calls for pod name carried, in order.
func (p *podPatches) statuses(name string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.calls[name]...)
}

// uidsOf is the UIDs the PATCH calls for pod name named, in order.
func (p *podPatches) uidsOf(name string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.uids[name]...)
}

func (p *podPatches) total() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.calls {
		n += len(c)
	}
	return n
}

// newPods returns a publisher whose retries have no delay.
func newPods(c metadata.Interface, workers int) *PodStatuses {
	return NewPodStatuses(c, "primary", PodOptions{Workers: workers,
		RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[PodKey](0, 0)})
}

// run runs pods until the test ends; the returned channel closes once Run
// has returned.
func run(t *testing.T, pods *PodStatuses) (context.CancelFunc, <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		pods.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return cancel, done
}

// podStatus is the network-status PublishPod writes for primary IP ip and
// no attachments.
func podStatus(t *testing.T, ip string) string {
	t.Helper()
	v, err := netrequest.FormatNetworkStatus([]netrequest.NetworkStatus{{Name: "primary", Interface: "eth0", IPs: []string{ip}, Default: true}})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func podRef(name, uid string) attachment.PodRef {
	return attachment.PodRef{Namespace: "team", Name: name, UID: uid}
}

// pendingCount is how many pods still have a status to write.
func (p *PodStatuses) pendingCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.pending)
}

func TestPodsWritesNetworkStatus(t *testing.T) {
	c := newClient(object("Pod", "team", "web", "uid-1", nil))
	p := &podPatches{result: func(_, _ string, call int) error {
		if call <= 3 {
			return errors.New("apiserver unavailable")
		}
		return nil
	}}
	pods := newPods(p.client(c), 2)
	run(t, pods)
	pods.PublishPod(attachment.PodRef{Namespace: "team", Name: "web", UID: "uid-1", SandboxID: "sb1"}, []string{"10.244.1.5"},
		[]attachment.Attachment{{Network: "blue", Interface: "net1", MAC: "02:00:00:00:00:01", IPs: []string{"10.251.1.7/24"}}})
	want, err := netrequest.FormatNetworkStatus([]netrequest.NetworkStatus{
		{Name: "primary", Interface: "eth0", IPs: []string{"10.244.1.5"}, Default: true},
		{Name: "blue", Interface: "net1", IPs: []string{"10.251.1.7"}, MAC: "02:00:00:00:00:01"},
	})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the network-status annotation", annotationIs(t, c, Pods, "team", "web", netrequest.StatusAnnotationKey, want))
	if got := len(p.statuses("web")); got != 4 {
		t.Errorf("PATCH calls = %d, want 4 (three failures retried)", got)
	}
	// The patch names the pod's UID: a pod recreated under the same name
	// must not get the old pod's status.
	for _, uid := range p.uidsOf("web") {
		if uid != "uid-1" {
			t.Errorf("patch names UID %q, want the pod's uid-1", uid)
		}
	}
	waitFor(t, "the written status to leave the pending map", func(context.Context) error {
		if n := pods.pendingCount(); n != 0 {
			return fmt.Errorf("%d pending", n)
		}
		return nil
	})
}

func TestPodsGivesUpOnDeletedPod(t *testing.T) {
	c := newClient()
	p := &podPatches{}
	pods := newPods(p.client(c), 1)
	t.Cleanup(pods.queue.ShutDown)
	pods.PublishPod(podRef("gone", "u"), nil, nil)
	// One worker step, in the test's goroutine: what it leaves queued is
	// all the retrying there will be.
	if !pods.processNext(t.Context()) {
		t.Fatal("processNext stopped on a running queue")
	}
	if got := len(p.statuses("gone")); got != 1 {
		t.Errorf("PATCH calls = %d, want 1", got)
	}
	key := PodKey{Namespace: "team", Name: "gone", UID: "u"}
	if n, r, pending := pods.queue.Len(), pods.queue.NumRequeues(key), pods.pendingCount(); n != 0 || r != 0 || pending != 0 {
		t.Errorf("after NotFound: %d queued, %d requeues, %d pending; want none: a missing pod is not retried", n, r, pending)
	}
}

func TestPodsRecreatedPodGetsOnlyItsOwnStatus(t *testing.T) {
	c := newClient(object("Pod", "team", "web", "uid-2", nil))
	p := &podPatches{result: func(_, uid string, _ int) error {
		if uid != "uid-2" { // the API server's UID precondition
			return apierrors.NewConflict(schema.GroupResource{Resource: "pods"}, "web", errors.New("precondition failed: UID mismatch"))
		}
		return nil
	}}
	pods := newPods(p.client(c), 1)
	t.Cleanup(pods.queue.ShutDown)
	oldStatus, newStatus := podStatus(t, "10.244.1.5"), podStatus(t, "10.244.1.6")
	pods.PublishPod(podRef("web", "uid-1"), []string{"10.244.1.5"}, nil) // the old pod, late
	pods.PublishPod(podRef("web", "uid-2"), []string{"10.244.1.6"}, nil)
	for range 2 {
		if !pods.processNext(t.Context()) {
			t.Fatal("processNext stopped on a running queue")
		}
	}
	if got := annotation(t, c, Pods, "team", "web", netrequest.StatusAnnotationKey); got != newStatus {
		t.Errorf("status = %q, want the new pod's %q", got, newStatus)
	}
	if got := p.statuses("web"); len(got) != 2 || got[0] != oldStatus || got[1] != newStatus {
		t.Errorf("PATCHes carried %q, want the old pod's (refused) and then the new pod's", got)
	}
	if n, pending := pods.queue.Len(), pods.pendingCount(); n != 0 || pending != 0 {
		t.Errorf("%d queued, %d pending; want none: a replaced pod is not retried", n, pending)
	}
}

func TestPodsWritesEveryPodOfABurst(t *testing.T) {
	const n = 2000
	var objects []runtime.Object
	for i := range n {
		objects = append(objects, object("Pod", "team", fmt.Sprintf("pod-%d", i), fmt.Sprintf("uid-%d", i), nil))
	}
	c := newClient(objects...)
	p := &podPatches{}
	pods := newPods(p.client(c), 2)
	run(t, pods)
	var wg sync.WaitGroup
	for g := range 20 { // publishers racing each other and the workers
		wg.Go(func() {
			for i := g; i < n; i += 20 {
				pods.PublishPod(podRef(fmt.Sprintf("pod-%d", i), fmt.Sprintf("uid-%d", i)), []string{fmt.Sprintf("10.0.%d.%d", i/256, i%256)}, nil)
			}
		})
	}
	wg.Wait()
	// A status leaves the pending map once written: polling that spares the
	// fake, whose one lock every List of 2000 pods would hold.
	waitFor(t, "every status written", func(context.Context) error {
		if n := pods.pendingCount(); n != 0 {
			return fmt.Errorf("%d pods pending", n)
		}
		return nil
	})
	list, err := c.Resource(Pods).Namespace("team").List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range list.Items {
		if o.Annotations[netrequest.StatusAnnotationKey] == "" {
			t.Errorf("pod %s has no status", o.Name)
		}
	}
	if got := p.total(); got != n {
		t.Errorf("PATCH calls = %d, want %d: one per pod", got, n)
	}
	for _, i := range []int{0, 1000, n - 1} {
		want := podStatus(t, fmt.Sprintf("10.0.%d.%d", i/256, i%256))
		if got := annotation(t, c, Pods, "team", fmt.Sprintf("pod-%d", i), netrequest.StatusAnnotationKey); got != want {
			t.Errorf("pod-%d status = %q, want %q", i, got, want)
		}
	}
}

// holdFirst holds the first PATCH of pod name until release is closed;
// entered is closed once it is held.
func holdFirst(name string) (result func(string, string, int) error, entered, release chan struct{}) {
	entered, release = make(chan struct{}), make(chan struct{})
	return func(n, _ string, call int) error {
		if n == name && call == 1 {
			close(entered)
			<-release
		}
		return nil
	}, entered, release
}

func TestPodsCoalescesRepublishes(t *testing.T) {
	c := newClient(object("Pod", "team", "web", "uid-1", nil))
	hold, entered, release := holdFirst("web")
	p := &podPatches{result: hold}
	pods := newPods(p.client(c), 2)
	run(t, pods)
	pods.PublishPod(podRef("web", "uid-1"), []string{"10.244.0.0"}, nil)
	<-entered
	for i := 1; i < 100; i++ {
		pods.PublishPod(podRef("web", "uid-1"), []string{fmt.Sprintf("10.244.0.%d", i)}, nil)
	}
	close(release)
	last := podStatus(t, "10.244.0.99")
	waitFor(t, "the last status", annotationIs(t, c, Pods, "team", "web", netrequest.StatusAnnotationKey, last))
	if got := p.statuses("web"); len(got) != 2 || got[1] != last {
		t.Errorf("PATCHes carried %d statuses, want 2 of 100 publishes: the held first and then only the last", len(got))
	}
}

func TestPodsWritesStatusPublishedDuringWrite(t *testing.T) {
	c := newClient(object("Pod", "team", "web", "uid-1", nil), object("Pod", "team", "db", "uid-2", nil))
	hold, entered, release := holdFirst("web")
	p := &podPatches{result: hold}
	pods := newPods(p.client(c), 2)
	run(t, pods)
	first, second := podStatus(t, "10.244.1.5"), podStatus(t, "10.244.1.6")
	pods.PublishPod(podRef("web", "uid-1"), []string{"10.244.1.5"}, nil)
	<-entered
	pods.PublishPod(podRef("web", "uid-1"), []string{"10.244.1.6"}, nil)
	// The other worker is free: a held write holds up only its own pod.
	pods.PublishPod(podRef("db", "uid-2"), []string{"10.244.1.7"}, nil)
	waitFor(t, "the other pod's status", annotationIs(t, c, Pods, "team", "db", netrequest.StatusAnnotationKey, podStatus(t, "10.244.1.7")))
	if got := p.statuses("web"); len(got) != 1 {
		t.Fatalf("PATCHes for web while its first is held: %d, want 1: one write per pod at a time", len(got))
	}
	close(release)
	waitFor(t, "the status published during the write", annotationIs(t, c, Pods, "team", "web", netrequest.StatusAnnotationKey, second))
	if got := p.statuses("web"); len(got) != 2 || got[0] != first || got[1] != second {
		t.Errorf("PATCHes carried %q, want the first status and then the second", got)
	}
}

func TestPodsRunStopsOnCancel(t *testing.T) {
	c := newClient(object("Pod", "team", "web", "uid-1", nil))
	pods := newPods(c, 2)
	cancel, done := run(t, pods)
	pods.PublishPod(podRef("web", "uid-1"), []string{"10.244.1.5"}, nil)
	waitFor(t, "the status", annotationIs(t, c, Pods, "team", "web", netrequest.StatusAnnotationKey, podStatus(t, "10.244.1.5")))
	cancel()
	select { // Run returns only once its workers have
	case <-done:
	case <-t.Context().Done():
		t.Fatal("Run did not return after cancel")
	}
	if !pods.queue.ShuttingDown() {
		t.Error("queue not shut down")
	}
	pods.PublishPod(podRef("web", "uid-1"), []string{"10.244.1.6"}, nil) // must not block or be kept
	if n := pods.pendingCount(); n != 0 {
		t.Errorf("%d statuses pending after Run returned, want 0", n)
	}
}
