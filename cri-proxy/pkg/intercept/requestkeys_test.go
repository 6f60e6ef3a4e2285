package intercept

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// Every NPWG key of the annotation reaches the attacher.
func TestRunPodSandboxCarriesRequestKeys(t *testing.T) {
	f := newFixture("blue", "red")
	f.nets.caps["blue"] = []string{"bandwidth", "ips", "mac", "portMappings"}
	_, err := f.srv.runPodSandbox(context.Background(), runRequest(`[
  {"name": "blue", "interface": "ext0", "ips": ["10.1.1.9/24"], "mac": "02:00:00:00:00:09",
   "default-route": ["10.1.1.1"], "cni-args": {"ips": ["10.1.1.9"], "x": {"y": 1}},
   "portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"}],
   "bandwidth": {"ingressRate": 1000000, "ingressBurst": 2000000, "egressRate": 3000000, "egressBurst": 4000000}},
  {"name": "red"}]`), f.next(&runtimeapi.RunPodSandboxResponse{PodSandboxId: "sb1"}))
	if err != nil {
		t.Fatal(err)
	}
	r := f.att.lastReqs
	if len(r) != 2 {
		t.Fatalf("requests = %+v, want two", r)
	}
	blue := r[0]
	wantPM := []netrequest.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp", HostIP: "127.0.0.1"}}
	wantBW := netrequest.Bandwidth{IngressRate: 1000000, IngressBurst: 2000000, EgressRate: 3000000, EgressBurst: 4000000}
	var args map[string]any
	if blue.Interface != "ext0" || !slices.Equal(blue.IPs, []string{"10.1.1.9/24"}) || blue.MAC != "02:00:00:00:00:09" ||
		!slices.Equal(blue.DefaultRoute, []string{"10.1.1.1"}) || !slices.Equal(blue.PortMappings, wantPM) ||
		blue.Bandwidth == nil || *blue.Bandwidth != wantBW || json.Unmarshal(blue.CNIArgs, &args) != nil || len(args) != 2 {
		t.Errorf("blue's request = %+v (cni-args %s), want every key of the annotation", blue, blue.CNIArgs)
	}
	if red := r[1]; red.Interface != "net1" || red.IPs != nil || red.DefaultRoute != nil || red.CNIArgs != nil || red.PortMappings != nil || red.Bandwidth != nil {
		t.Errorf("red's request = %+v, want the name and an interface only", red)
	}
}

// A capability the network's config does not declare is refused before
// containerd makes a sandbox: libcni would silently not pass the arg.
func TestRunPodSandboxRefusesUndeclaredCapability(t *testing.T) {
	f := newFixture("blue", "red")
	f.nets.caps["blue"] = nil
	f.nets.caps["red"] = []string{"mac"}
	_, err := f.srv.runPodSandbox(context.Background(),
		runRequest(`[{"name": "red", "mac": "02:00:00:00:00:09"}, {"name": "blue", "ips": ["10.1.1.9/24"], "mac": "02:00:00:00:00:0a"}]`),
		f.next(&runtimeapi.RunPodSandboxResponse{PodSandboxId: "sb1"}))
	st, _ := status.FromError(err)
	if err == nil || st.Code() != codes.FailedPrecondition {
		t.Fatalf("error = %v, want FailedPrecondition", err)
	}
	for _, want := range []string{
		`pod team/web: network "blue" cannot honour "ips": no plugin of its config declares the "ips" capability`,
		`network "blue" cannot honour "mac": no plugin of its config declares the "mac" capability`,
	} {
		if !strings.Contains(st.Message(), want) {
			t.Errorf("message %q does not contain %q", st.Message(), want)
		}
	}
	if strings.Contains(st.Message(), `"red"`) {
		t.Errorf("message %q names red, whose config declares mac", st.Message())
	}
	if f.forwarded != 0 || len(f.att.calls) != 0 {
		t.Errorf("forwarded %d, attacher calls %v; want nothing", f.forwarded, f.att.calls)
	}
}
