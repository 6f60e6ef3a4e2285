package intercept

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/attachment"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/crifields"
)

// maxStatusLen is the most a status message the proxy returns may have:
// netrequest.MaxErrorLen for the problem, plus the pod's name cut and a
// little context.
const maxStatusLen = 1536

// hugeName is 1 MiB of a valid name character.
var hugeName = strings.Repeat("x", 1<<20)

// A caller talking CRI directly may send up to the message limit; what
// the proxy answers stays small and still names the problem.
func TestStatusMessagesAreBounded(t *testing.T) {
	hugePod := func(cfg *runtimeapi.PodSandboxConfig) {
		cfg.Metadata.Name = hugeName
		cfg.Metadata.Namespace = "team" + hugeName
	}
	nativeList := func(cfg *runtimeapi.PodSandboxConfig) {
		nets := make([]crifields.SandboxNetwork, 20000)
		for i := range nets {
			nets[i] = crifields.SandboxNetwork{Name: fmt.Sprintf("n%047d", i)}
		}
		crifields.SetSandboxNetworks(cfg, nets)
	}
	nativeHugeName := func(cfg *runtimeapi.PodSandboxConfig) {
		crifields.SetSandboxNetworks(cfg, []crifields.SandboxNetwork{{Name: hugeName, InterfaceName: hugeName}})
	}
	hugeErr := errors.New("pod team/" + hugeName + ": boom")
	for _, tc := range []struct {
		name  string
		setup func(f *fixture)
		call  func(f *fixture) error
		want  []string
	}{
		{"huge annotation, text", nil, run(runRequest(strings.Repeat("Bad_Name,", (1<<20)/9) + "Bad_Name")),
			[]string{"pod team/web: invalid network request: ", "entries, at most 16 allowed"}},
		{"huge annotation, JSON name", nil, run(runRequest(`[{"name":"` + hugeName + `"}]`)),
			[]string{"invalid network request: ", `networks[0] ("xxx`, "name must be"}},
		{"huge annotation, JSON value", nil, run(runRequest(`[{"name":"blue","ips":["` + hugeName + `"]}]`)),
			[]string{"invalid network request: ", `networks[0] ("blue"): ips[0] "xxx`}},
		{"huge native list", nil, run(runRequest("", nativeList)),
			[]string{"invalid network request: ", "20000 entries, at most 16 allowed"}},
		{"huge native name", nil, run(runRequest("", nativeHugeName)),
			[]string{"invalid network request: ", `networks[0] ("xxx`, "name must be"}},
		{"huge pod name, invalid request", nil, run(runRequest("Blue_1", hugePod)),
			[]string{"pod teamxxx", "...: invalid network request: ", "Blue_1"}},
		{"huge pod name, missing network", nil, run(runRequest("green", hugePod)),
			[]string{"pod teamxxx", `network(s) "green" not available on this node`}},
		{"huge pod name, host network", nil, run(runRequest("blue", hugePod, func(cfg *runtimeapi.PodSandboxConfig) {
			cfg.Linux = &runtimeapi.LinuxPodSandboxConfig{SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
				NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}}
		})), []string{"pod teamxxx", "host-network pod cannot request networks"}},
		{"huge pod name, capability", func(f *fixture) { f.nets.caps["blue"] = nil }, run(runRequest(`[{"name":"blue","mac":"02:00:00:00:00:01"}]`, hugePod)),
			[]string{"pod teamxxx", `network "blue" cannot honour "mac"`}},
		{"huge intent error", func(f *fixture) { f.att.intendErr = hugeErr }, run(runRequest("blue", hugePod)),
			[]string{"pod teamxxx", "pod team/xxx", "bytes cut"}},
		{"huge attach error", func(f *fixture) { f.att.attachErr = hugeErr }, run(runRequest("blue", hugePod)),
			[]string{"pod teamxxx", "attach networks: pod team/xxx", "bytes cut"}},
		{"huge admit error", func(f *fixture) {
			f.att.admitErr = fmt.Errorf("pod team/%s: sandbox sb1: %w", hugeName, attachment.ErrNotAttached)
		}, func(f *fixture) error {
			_, err := f.srv.createContainer(context.Background(), createRequest("blue", hugePod), f.next(&runtimeapi.CreateContainerResponse{}))
			return err
		}, []string{"pod team/xxx", "bytes cut"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture("blue")
			if tc.setup != nil {
				tc.setup(f)
			}
			err := tc.call(f)
			st, ok := status.FromError(err)
			if err == nil || !ok {
				t.Fatalf("error = %.200v, want a status", err)
			}
			msg := st.Message()
			if len(msg) > maxStatusLen {
				t.Errorf("status message of %d bytes, want at most %d: %.300s...", len(msg), maxStatusLen, msg)
			}
			for _, want := range tc.want {
				if !strings.Contains(msg, want) {
					t.Errorf("status message does not contain %q: %s", want, msg)
				}
			}
		})
	}
}

// run calls runPodSandbox with req.
func run(req []byte) func(f *fixture) error {
	return func(f *fixture) error {
		_, err := f.srv.runPodSandbox(context.Background(), req, f.next(&runtimeapi.RunPodSandboxResponse{PodSandboxId: "sb1"}))
		return err
	}
}
