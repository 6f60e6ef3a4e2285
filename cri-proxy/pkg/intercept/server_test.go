package intercept

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/attachment"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/catalog"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/crifields"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// fakeAttacher records calls and answers from its fields.
type fakeAttacher struct {
	mu        sync.Mutex
	intendErr error
	attachErr error
	detachErr error
	admitErr  error
	attached  map[string][]attachment.Attachment
	// "intend <uid>/<attempt>", "settle <uid>/<attempt>", "abandon ...",
	// "attach <sandbox> <netns> <net>:<if>,...", "admit <sandbox> <uid>/<attempt>", "detach <sandbox>"
	calls    []string
	lastReqs []attachment.Request
	// detachBudget is the time the last Detach had.
	detachBudget time.Duration
}

func (f *fakeAttacher) Intend(pod attachment.PodRef, _ []attachment.Request) (Intent, error) {
	key := fmt.Sprintf("%s/%d", pod.UID, pod.Attempt)
	f.record("intend " + key)
	if f.intendErr != nil {
		return nil, f.intendErr
	}
	return &fakeIntent{f: f, key: key}, nil
}

type fakeIntent struct {
	f   *fakeAttacher
	key string
}

func (i *fakeIntent) Settle() error { i.f.record("settle " + i.key); return nil }
func (i *fakeIntent) Abandon()      { i.f.record("abandon " + i.key) }

func (f *fakeAttacher) Admit(_ context.Context, pod attachment.PodRef) error {
	f.record(fmt.Sprintf("admit %s %s/%d", pod.SandboxID, pod.UID, pod.Attempt))
	return f.admitErr
}

func (f *fakeAttacher) record(c string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}

func (f *fakeAttacher) Attach(_ context.Context, pod attachment.PodRef, netns string, reqs []attachment.Request) ([]attachment.Attachment, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var parts []string
	for _, r := range reqs {
		parts = append(parts, r.Name+":"+r.Interface)
	}
	f.calls = append(f.calls, "attach "+pod.SandboxID+" "+netns+" "+strings.Join(parts, ","))
	f.lastReqs = reqs
	if f.attachErr != nil {
		return nil, f.attachErr
	}
	var atts []attachment.Attachment
	for i, r := range reqs {
		atts = append(atts, attachment.Attachment{Network: r.Name, Interface: r.Interface, IPs: []string{"10.9." + string(rune('0'+i)) + ".2/24"}})
	}
	if f.attached == nil {
		f.attached = map[string][]attachment.Attachment{}
	}
	f.attached[pod.SandboxID] = atts
	return atts, nil
}

func (f *fakeAttacher) Detach(ctx context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "detach "+id)
	if d, ok := ctx.Deadline(); ok {
		f.detachBudget = time.Until(d)
	}
	if f.detachErr != nil {
		return f.detachErr
	}
	delete(f.attached, id)
	return nil
}

func (f *fakeAttacher) Attachments(id string) []attachment.Attachment {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.attached[id]
}

// fakeNetworks are the available networks (sorted). Each declares the
// capabilities caps lists for it, or ips and mac when caps has no entry.
type fakeNetworks struct {
	names []string
	caps  map[string][]string
}

func (n *fakeNetworks) Available() []string { return n.names }

func (n *fakeNetworks) Lookup(name string) (catalog.Network, bool) {
	if !slices.Contains(n.names, name) {
		return catalog.Network{}, false
	}
	caps, ok := n.caps[name]
	if !ok {
		caps = []string{"ips", "mac"}
	}
	return catalog.Network{Name: name, Available: true, Capabilities: caps}, true
}

// fakeRuntime is containerd as the handlers' direct client sees it.
type fakeRuntime struct {
	runtimeapi.RuntimeServiceClient // unimplemented methods panic
	mu                              sync.Mutex
	info                            string
	calls                           []string
	stopErr                         error
}

func (f *fakeRuntime) PodSandboxStatus(_ context.Context, r *runtimeapi.PodSandboxStatusRequest, _ ...grpc.CallOption) (*runtimeapi.PodSandboxStatusResponse, error) {
	f.record("status " + r.PodSandboxId)
	return &runtimeapi.PodSandboxStatusResponse{
		Status: &runtimeapi.PodSandboxStatus{Id: r.PodSandboxId, Network: &runtimeapi.PodSandboxNetworkStatus{
			Ip: "10.244.1.5", AdditionalIps: []*runtimeapi.PodIP{{Ip: "fd00::5"}}}},
		Info: map[string]string{"info": f.info},
	}, nil
}

func (f *fakeRuntime) StopPodSandbox(_ context.Context, r *runtimeapi.StopPodSandboxRequest, _ ...grpc.CallOption) (*runtimeapi.StopPodSandboxResponse, error) {
	f.record("stop " + r.PodSandboxId)
	if f.stopErr != nil {
		return nil, f.stopErr
	}
	return &runtimeapi.StopPodSandboxResponse{}, nil
}

func (f *fakeRuntime) RemovePodSandbox(_ context.Context, r *runtimeapi.RemovePodSandboxRequest, _ ...grpc.CallOption) (*runtimeapi.RemovePodSandboxResponse, error) {
	f.record("remove " + r.PodSandboxId)
	return &runtimeapi.RemovePodSandboxResponse{}, nil
}

func (f *fakeRuntime) record(c string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c)
}

type fakePublisher struct {
	pods []string
	ips  [][]string
}

func (p *fakePublisher) PublishPod(pod attachment.PodRef, primaryIPs []string, atts []attachment.Attachment) {
	p.pods = append(p.pods, pod.Namespace+"/"+pod.Name+"@"+pod.SandboxID)
	p.ips = append(p.ips, primaryIPs)
}

const netnsInfo = `{"runtimeSpec":{"linux":{"namespaces":[{"type":"network","path":"/var/run/netns/cni-1234"}]}}}`

type fixture struct {
	nets *fakeNetworks
	att  *fakeAttacher
	rt   *fakeRuntime
	pub  *fakePublisher
	srv  *Server
	// forwarded counts the calls that reached "containerd" (next).
	forwarded int
}

func newFixture(available ...string) *fixture {
	f := &fixture{nets: &fakeNetworks{names: available, caps: map[string][]string{}}, att: &fakeAttacher{}, rt: &fakeRuntime{info: netnsInfo}, pub: &fakePublisher{}}
	f.srv = New(f.att, f.nets, f.rt, f.pub)
	return f
}

// next answers like containerd with resp, after recording the call.
func (f *fixture) next(resp proto.Message) func(context.Context, []byte) ([]byte, error) {
	return func(context.Context, []byte) ([]byte, error) {
		f.forwarded++
		return proto.Marshal(resp)
	}
}

func runRequest(annotation string, mutate ...func(*runtimeapi.PodSandboxConfig)) []byte {
	cfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "team", Uid: "uid-1", Attempt: 2},
	}
	if annotation != "" {
		cfg.Annotations = map[string]string{netrequest.AnnotationKey: annotation}
	}
	for _, m := range mutate {
		m(cfg)
	}
	b, err := proto.Marshal(&runtimeapi.RunPodSandboxRequest{Config: cfg})
	if err != nil {
		panic(err)
	}
	return b
}

func TestRunPodSandboxWithoutNetworksOnlyForwards(t *testing.T) {
	f := newFixture("blue")
	want, _ := proto.Marshal(&runtimeapi.RunPodSandboxResponse{PodSandboxId: "sb1"})
	got, err := f.srv.runPodSandbox(context.Background(), runRequest(""), f.next(&runtimeapi.RunPodSandboxResponse{PodSandboxId: "sb1"}))
	if err != nil || string(got) != string(want) {
		t.Fatalf("runPodSandbox = %x, %v; want %x unchanged", got, err, want)
	}
	if f.forwarded != 1 || len(f.att.calls) != 0 || len(f.rt.calls) != 0 {
		t.Errorf("forwarded %d times, attacher calls %v, runtime calls %v; want one forward and nothing else", f.forwarded, f.att.calls, f.rt.calls)
	}
}

func TestRunPodSandboxAttachesAnnotatedNetworks(t *testing.T) {
	f := newFixture("blue", "red")
	resp := &runtimeapi.RunPodSandboxResponse{PodSandboxId: "sb1"}
	want, _ := proto.Marshal(resp)
	got, err := f.srv.runPodSandbox(context.Background(), runRequest("blue, red@data0"), f.next(resp))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("response changed: %x, want %x", got, want)
	}
	if want := []string{"intend uid-1/2", "attach sb1 /var/run/netns/cni-1234 blue:net1,red:data0", "settle uid-1/2"}; !slices.Equal(f.att.calls, want) {
		t.Errorf("attacher calls = %v, want %v", f.att.calls, want)
	}
	if !slices.Equal(f.pub.pods, []string{"team/web@sb1"}) || !slices.Equal(f.pub.ips[0], []string{"10.244.1.5", "fd00::5"}) {
		t.Errorf("published %v with primary IPs %v; want team/web@sb1 with 10.244.1.5 and fd00::5", f.pub.pods, f.pub.ips)
	}
}

func TestRunPodSandboxJSONRequestCarriesIPsAndMAC(t *testing.T) {
	f := newFixture("blue")
	_, err := f.srv.runPodSandbox(context.Background(),
		runRequest(`[{"name":"blue","interface":"ext0","ips":["10.1.1.9/24"],"mac":"02:00:00:00:00:09"}]`),
		f.next(&runtimeapi.RunPodSandboxResponse{PodSandboxId: "sb1"}))
	if err != nil {
		t.Fatal(err)
	}
	r := f.att.lastReqs
	if len(r) != 1 || r[0].Interface != "ext0" || !slices.Equal(r[0].IPs, []string{"10.1.1.9/24"}) || r[0].MAC != "02:00:00:00:00:09" {
		t.Errorf("requests = %+v, want ext0 with the IP and MAC", r)
	}
}

func TestRunPodSandboxNativeFieldWinsOverAnnotation(t *testing.T) {
	f := newFixture("blue", "green", "red")
	req := runRequest("red", func(cfg *runtimeapi.PodSandboxConfig) {
		crifields.SetSandboxNetworks(cfg, []crifields.SandboxNetwork{{Name: "green"}, {Name: "blue", InterfaceName: "b0"}})
	})
	if _, err := f.srv.runPodSandbox(context.Background(), req, f.next(&runtimeapi.RunPodSandboxResponse{PodSandboxId: "sb1"})); err != nil {
		t.Fatal(err)
	}
	if want := []string{"intend uid-1/2", "attach sb1 /var/run/netns/cni-1234 green:net1,blue:b0", "settle uid-1/2"}; !slices.Equal(f.att.calls, want) {
		t.Errorf("attacher calls = %v, want %v (field 10, not the annotation)", f.att.calls, want)
	}
}

// Requests that cannot succeed fail before containerd makes a sandbox.
func TestRunPodSandboxRejectsBeforeForwarding(t *testing.T) {
	hostNetwork := func(cfg *runtimeapi.PodSandboxConfig) {
		cfg.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}}
	}
	for _, tc := range []struct {
		name string
		req  []byte
		code codes.Code
		msg  []string
	}{
		{"invalid name", runRequest("Blue_1"), codes.InvalidArgument, []string{"team/web", "invalid network request", "Blue_1"}},
		{"eth0", runRequest("blue@eth0"), codes.InvalidArgument, []string{"eth0"}},
		{"duplicate", runRequest("blue,blue"), codes.InvalidArgument, []string{"blue"}},
		{"bad json", runRequest(`[{"name":"blue"`), codes.InvalidArgument, []string{"annotation " + netrequest.AnnotationKey}},
		{"host network", runRequest("blue", hostNetwork), codes.InvalidArgument, []string{"host-network"}},
		{"missing network", runRequest("blue,green,red"), codes.FailedPrecondition, []string{`"green", "red" not available`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture("blue")
			_, err := f.srv.runPodSandbox(context.Background(), tc.req, f.next(&runtimeapi.RunPodSandboxResponse{PodSandboxId: "sb1"}))
			st, _ := status.FromError(err)
			if err == nil || st.Code() != tc.code {
				t.Fatalf("error = %v, want code %v", err, tc.code)
			}
			for _, m := range tc.msg {
				if !strings.Contains(st.Message(), m) {
					t.Errorf("error %q does not mention %q", st.Message(), m)
				}
			}
			if f.forwarded != 0 || len(f.att.calls) != 0 {
				t.Errorf("forwarded %d, attacher calls %v; want nothing", f.forwarded, f.att.calls)
			}
		})
	}
}

func TestRunPodSandboxAttachFailureRemovesSandbox(t *testing.T) {
	f := newFixture("blue", "red")
	f.att.attachErr = errors.New(`network "red" (net2): plugin bridge failed (add): no IP addresses available`)
	_, err := f.srv.runPodSandbox(context.Background(), runRequest("blue,red"), f.next(&runtimeapi.RunPodSandboxResponse{PodSandboxId: "sb1"}))
	if err == nil || !strings.Contains(err.Error(), `network "red"`) || !strings.Contains(err.Error(), "no IP addresses available") {
		t.Fatalf("error = %v, want one naming the network and the cause", err)
	}
	if want := []string{"status sb1", "stop sb1", "remove sb1"}; !slices.Equal(f.rt.calls, want) {
		t.Errorf("runtime calls = %v, want %v", f.rt.calls, want)
	}
	if len(f.pub.pods) != 0 {
		t.Errorf("published %v for a failed sandbox", f.pub.pods)
	}
	// The sandbox is gone: the outcome is known.
	if want := []string{"intend uid-1/2", "attach sb1 /var/run/netns/cni-1234 blue:net1,red:net2", "settle uid-1/2"}; !slices.Equal(f.att.calls, want) {
		t.Errorf("attacher calls = %v, want %v", f.att.calls, want)
	}
}

// A rollback whose stop fails leaves the intent to the reconciler.
func TestRunPodSandboxFailedRollbackAbandonsIntent(t *testing.T) {
	f := newFixture("blue")
	f.att.attachErr = errors.New("boom")
	f.rt.stopErr = status.Error(codes.Unavailable, "containerd is restarting")
	if _, err := f.srv.runPodSandbox(context.Background(), runRequest("blue"), f.next(&runtimeapi.RunPodSandboxResponse{PodSandboxId: "sb1"})); err == nil {
		t.Fatal("no error")
	}
	if want := []string{"intend uid-1/2", "attach sb1 /var/run/netns/cni-1234 blue:net1", "abandon uid-1/2"}; !slices.Equal(f.att.calls, want) {
		t.Errorf("attacher calls = %v, want %v", f.att.calls, want)
	}
}

func TestRunPodSandboxWithoutNetNSRemovesSandbox(t *testing.T) {
	f := newFixture("blue")
	f.rt.info = `{"runtimeSpec":{"linux":{"namespaces":[{"type":"pid"}]}}}`
	_, err := f.srv.runPodSandbox(context.Background(), runRequest("blue"), f.next(&runtimeapi.RunPodSandboxResponse{PodSandboxId: "sb1"}))
	if status.Code(err) != codes.Internal || !strings.Contains(err.Error(), "no network namespace") {
		t.Fatalf("error = %v, want Internal naming the missing netns", err)
	}
	if want := []string{"status sb1", "stop sb1", "remove sb1"}; !slices.Equal(f.rt.calls, want) {
		t.Errorf("runtime calls = %v, want %v", f.rt.calls, want)
	}
	if want := []string{"intend uid-1/2", "settle uid-1/2"}; !slices.Equal(f.att.calls, want) {
		t.Errorf("attacher calls = %v, want %v", f.att.calls, want)
	}
}

// The intent is recorded before containerd is asked; a call that ends
// without a sandbox ID (an error, a cancel) leaves it to the reconciler.
func TestRunPodSandboxRuntimeErrorPassesThrough(t *testing.T) {
	f := newFixture("blue")
	upstream := status.Error(codes.ResourceExhausted, "no room")
	var seen []string
	_, err := f.srv.runPodSandbox(context.Background(), runRequest("blue"), func(context.Context, []byte) ([]byte, error) {
		seen = slices.Clone(f.att.calls)
		return nil, upstream
	})
	if err != upstream {
		t.Fatalf("error = %v, want containerd's own %v", err, upstream)
	}
	if !slices.Equal(seen, []string{"intend uid-1/2"}) {
		t.Errorf("attacher calls when forwarding = %v, want the intent recorded", seen)
	}
	if want := []string{"intend uid-1/2", "abandon uid-1/2"}; !slices.Equal(f.att.calls, want) || len(f.rt.calls) != 0 {
		t.Errorf("attacher calls %v (want %v), runtime calls %v (want none)", f.att.calls, want, f.rt.calls)
	}
}

func TestRunPodSandboxIntentFailureForwardsNothing(t *testing.T) {
	f := newFixture("blue")
	f.att.intendErr = errors.New("write intent: disk full")
	_, err := f.srv.runPodSandbox(context.Background(), runRequest("blue"), f.next(&runtimeapi.RunPodSandboxResponse{PodSandboxId: "sb1"}))
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "disk full") || f.forwarded != 0 {
		t.Errorf("error = %v, forwarded %d; want the intent's error and nothing forwarded", err, f.forwarded)
	}
}

func createRequest(annotation string, mutate ...func(*runtimeapi.PodSandboxConfig)) []byte {
	var run runtimeapi.RunPodSandboxRequest
	if err := proto.Unmarshal(runRequest(annotation, mutate...), &run); err != nil {
		panic(err)
	}
	b, err := proto.Marshal(&runtimeapi.CreateContainerRequest{PodSandboxId: "sb1", Config: &runtimeapi.ContainerConfig{
		Metadata: &runtimeapi.ContainerMetadata{Name: "app"}}, SandboxConfig: run.Config})
	if err != nil {
		panic(err)
	}
	return b
}

// Containers start only in sandboxes that have their networks.
func TestCreateContainer(t *testing.T) {
	native := func(cfg *runtimeapi.PodSandboxConfig) {
		crifields.SetSandboxNetworks(cfg, []crifields.SandboxNetwork{{Name: "blue"}})
	}
	for _, tc := range []struct {
		name      string
		req       []byte
		admitErr  error
		wantAdmit bool
		wantCode  codes.Code
	}{
		{"no networks", createRequest(""), nil, false, codes.OK},
		{"annotation, attached", createRequest("blue"), nil, true, codes.OK},
		{"native field, attached", createRequest("", native), nil, true, codes.OK},
		{"invalid request", createRequest("Blue_1"), nil, true, codes.OK},
		{"not attached", createRequest("blue"), fmt.Errorf("pod team/web: sandbox sb1: %w", attachment.ErrNotAttached), true, codes.FailedPrecondition},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture("blue")
			f.att.admitErr = tc.admitErr
			_, err := f.srv.createContainer(context.Background(), tc.req, f.next(&runtimeapi.CreateContainerResponse{ContainerId: "c1"}))
			if status.Code(err) != tc.wantCode {
				t.Fatalf("error = %v, want code %v", err, tc.wantCode)
			}
			var want []string
			if tc.wantAdmit {
				want = []string{"admit sb1 uid-1/2"}
			}
			if !slices.Equal(f.att.calls, want) {
				t.Errorf("attacher calls = %v, want %v", f.att.calls, want)
			}
			if forwarded := f.forwarded == 1; forwarded != (tc.wantCode == codes.OK) {
				t.Errorf("forwarded %d times", f.forwarded)
			}
			if err != nil && !strings.Contains(err.Error(), "team/web") {
				t.Errorf("error %q does not name the pod", err)
			}
		})
	}
}

// Detaching gets half of the call's remaining time: the runtime the rest.
func TestStopDetachesWithinHalfTheDeadline(t *testing.T) {
	f := newFixture("blue")
	f.att.attached = map[string][]attachment.Attachment{"sb1": {{Network: "blue", Interface: "net1"}}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	stop, _ := proto.Marshal(&runtimeapi.StopPodSandboxRequest{PodSandboxId: "sb1"})
	if _, err := f.srv.stopPodSandbox(ctx, stop, f.next(&runtimeapi.StopPodSandboxResponse{})); err != nil {
		t.Fatal(err)
	}
	if b := f.att.detachBudget; b > time.Minute || b < 50*time.Second {
		t.Errorf("detach had %v of the call's 2m, want about 1m", b)
	}
}

func TestStopAndRemoveDetachBeforeForwarding(t *testing.T) {
	f := newFixture("blue")
	f.att.attached = map[string][]attachment.Attachment{"sb1": {{Network: "blue", Interface: "net1"}}}
	var order []string
	next := func(context.Context, []byte) ([]byte, error) {
		order = append(order, "forward after "+strings.Join(f.att.calls, ";"))
		return proto.Marshal(&runtimeapi.StopPodSandboxResponse{})
	}
	stop, _ := proto.Marshal(&runtimeapi.StopPodSandboxRequest{PodSandboxId: "sb1"})
	if _, err := f.srv.stopPodSandbox(context.Background(), stop, next); err != nil {
		t.Fatal(err)
	}
	remove, _ := proto.Marshal(&runtimeapi.RemovePodSandboxRequest{PodSandboxId: "sb1"})
	if _, err := f.srv.removePodSandbox(context.Background(), remove, next); err != nil {
		t.Fatal(err)
	}
	// Remove after Stop finds nothing left to detach: idempotent.
	if want := []string{"forward after detach sb1", "forward after detach sb1"}; !slices.Equal(order, want) {
		t.Errorf("order = %v, want %v", order, want)
	}
}

func TestStopForwardsEvenWhenDetachFails(t *testing.T) {
	f := newFixture("blue")
	f.att.attached = map[string][]attachment.Attachment{"sb1": {{Network: "blue", Interface: "net1"}}}
	f.att.detachErr = errors.New("plugin bridge failed (del)")
	stop, _ := proto.Marshal(&runtimeapi.StopPodSandboxRequest{PodSandboxId: "sb1"})
	if _, err := f.srv.stopPodSandbox(context.Background(), stop, f.next(&runtimeapi.StopPodSandboxResponse{})); err != nil {
		t.Fatalf("stop = %v, want containerd's answer: a failed detach must not block pod deletion", err)
	}
	if f.forwarded != 1 {
		t.Errorf("forwarded %d times, want 1", f.forwarded)
	}
}

func TestStatusAddsNetworksAndFeature(t *testing.T) {
	f := newFixture("blue", "red")
	upstream := &runtimeapi.StatusResponse{
		Status:   &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{{Type: "RuntimeReady", Status: true}}},
		Features: &runtimeapi.RuntimeFeatures{UserNamespacesHostNetwork: true},
	}
	for _, verbose := range []bool{false, true} {
		req, _ := proto.Marshal(&runtimeapi.StatusRequest{Verbose: verbose})
		b, err := f.srv.status(context.Background(), req, f.next(upstream))
		if err != nil {
			t.Fatal(err)
		}
		var got runtimeapi.StatusResponse
		if err := proto.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		nets, err := crifields.StatusNetworks(&got)
		if err != nil || !slices.Equal(nets, []string{"blue", "red"}) {
			t.Errorf("verbose=%v: field 5 = %v, %v; want [blue red]", verbose, nets, err)
		}
		if len(got.GetStatus().GetConditions()) != 1 {
			t.Errorf("verbose=%v: containerd's conditions lost: %v", verbose, got.GetStatus())
		}
		if set, err := crifields.PodNetworksFeature(&got); err != nil || !set {
			t.Errorf("verbose=%v: features.pod_networks = %v, %v; want true", verbose, set, err)
		}
		if !got.GetFeatures().GetUserNamespacesHostNetwork() {
			t.Errorf("verbose=%v: containerd's features lost: %v", verbose, got.GetFeatures())
		}
		info, ok := got.Info[InfoKeyNetworks]
		if verbose != ok || (verbose && info != `["blue","red"]`) {
			t.Errorf("verbose=%v: info[%s] = %q (present %v)", verbose, InfoKeyNetworks, info, ok)
		}
	}
}

func TestPodSandboxStatusShowsAttachmentsWhenVerbose(t *testing.T) {
	f := newFixture("blue")
	atts := []attachment.Attachment{{Network: "blue", Interface: "net1", MAC: "02:00:00:00:00:01", IPs: []string{"10.9.0.2/24"}}}
	f.att.attached = map[string][]attachment.Attachment{"sb1": atts}
	upstream := &runtimeapi.PodSandboxStatusResponse{Status: &runtimeapi.PodSandboxStatus{Id: "sb1"}, Info: map[string]string{"info": "{}"}}
	raw, _ := proto.Marshal(upstream)

	quiet, _ := proto.Marshal(&runtimeapi.PodSandboxStatusRequest{PodSandboxId: "sb1"})
	if b, err := f.srv.podSandboxStatus(context.Background(), quiet, f.next(upstream)); err != nil || string(b) != string(raw) {
		t.Errorf("non-verbose answer changed: %v", err)
	}
	verbose, _ := proto.Marshal(&runtimeapi.PodSandboxStatusRequest{PodSandboxId: "sb1", Verbose: true})
	b, err := f.srv.podSandboxStatus(context.Background(), verbose, f.next(upstream))
	if err != nil {
		t.Fatal(err)
	}
	var got runtimeapi.PodSandboxStatusResponse
	if err := proto.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	var listed []attachment.Attachment
	if err := json.Unmarshal([]byte(got.Info[InfoKeyNetworks]), &listed); err != nil || len(listed) != 1 || listed[0].MAC != atts[0].MAC || listed[0].IPs[0] != "10.9.0.2/24" {
		t.Errorf("info[%s] = %q, want the attachment", InfoKeyNetworks, got.Info[InfoKeyNetworks])
	}
	if got.Info["info"] != "{}" || got.GetStatus().GetId() != "sb1" {
		t.Errorf("containerd's answer lost: %v", &got)
	}
}
