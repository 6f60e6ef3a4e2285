package attachment

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/libcni"

	"sigs.k8s.io/pod-networks/cri-proxy/internal/fakecni"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

var allCapabilities = []string{"bandwidth", "ips", "mac", "portMappings"}

// stdinJSON returns key of a call's stdin re-encoded, for comparisons.
func stdinJSON(t *testing.T, c fakecni.Call, key string) string {
	t.Helper()
	v, ok := c.Stdin[key]
	if !ok {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A capability no plugin declares fails Attach before anything is made.
func TestAttachRefusesUndeclaredCapability(t *testing.T) {
	e := newEnv(t, Config{}, map[string]string{
		"blue": fakecni.ConflistWithCapabilities("blue", "1.0.0", []string{"mac"}, "fakeplug", "otherplug"),
		"red":  fakecni.ConflistWithCapabilities("red", "1.0.0", allCapabilities, "fakeplug"),
	})
	_, err := e.m.Attach(context.Background(), testPod, testNetNS, []Request{
		{Name: "red", Interface: "net1", IPs: []string{"10.1.0.9/24"}},
		{Name: "blue", Interface: "net2", IPs: []string{"10.2.0.9/24"}, MAC: "02:00:00:00:00:01",
			PortMappings: []netrequest.PortMapping{{HostPort: 8080, ContainerPort: 80}}, Bandwidth: &netrequest.Bandwidth{}},
	})
	want := `network "blue" cannot honour "ips": no plugin of its config declares the "ips" capability` + "\n" +
		`network "blue" cannot honour "portMappings": no plugin of its config declares the "portMappings" capability` + "\n" +
		`network "blue" cannot honour "bandwidth": no plugin of its config declares the "bandwidth" capability`
	if err == nil || err.Error() != want {
		t.Fatalf("error = %v, want\n%s", err, want)
	}
	if n := len(e.fe.Calls("")); n != 0 {
		t.Errorf("%d plugin calls, want none", n)
	}
	e.assertNoLeak()
}

// Capability args reach the plugins that declare them, on ADD and on DEL.
func TestAttachCapabilityArgs(t *testing.T) {
	e := newEnv(t, Config{}, map[string]string{
		"blue": `{"cniVersion": "1.0.0", "name": "blue", "plugins": [
  {"type": "fakeplug", "capabilities": {"ips": true}},
  {"type": "portmap", "capabilities": {"portMappings": true}},
  {"type": "bandwidth", "capabilities": {"bandwidth": true}}]}`,
	})
	req := Request{Name: "blue", Interface: "net1", IPs: []string{"10.1.0.9/24"},
		PortMappings: []netrequest.PortMapping{{HostPort: 8080, ContainerPort: 80}, {HostPort: 5353, ContainerPort: 53, Protocol: "UDP", HostIP: "127.0.0.1"}},
		Bandwidth:    &netrequest.Bandwidth{IngressRate: 1000, IngressBurst: 2000}}
	if _, err := e.m.Attach(context.Background(), testPod, testNetNS, []Request{req}); err != nil {
		t.Fatal(err)
	}
	// The record survives a restart, and DEL runs from it.
	m := e.restart(Config{})
	if err := m.Detach(context.Background(), testPod.SandboxID); err != nil {
		t.Fatal(err)
	}
	// Keys sorted: stdinJSON re-encodes decoded maps.
	want := map[string]string{
		"fakeplug":  `{"ips":["10.1.0.9/24"]}`,
		"portmap":   `{"portMappings":[{"containerPort":80,"hostPort":8080,"protocol":"tcp"},{"containerPort":53,"hostIP":"127.0.0.1","hostPort":5353,"protocol":"udp"}]}`,
		"bandwidth": `{"bandwidth":{"ingressBurst":2000,"ingressRate":1000}}`,
	}
	calls := e.fe.Calls("")
	if len(calls) != 6 {
		t.Fatalf("%d plugin calls, want 3 ADDs and 3 DELs", len(calls))
	}
	for _, c := range calls {
		if got := stdinJSON(t, c, "runtimeConfig"); got != want[c.Plugin] {
			t.Errorf("%s %s: runtimeConfig %s, want %s", c.Cmd, c.Plugin, got, want[c.Plugin])
		}
	}
	e.assertNoLeak()
}

// cni-args are merged into every plugin's args.cni, and DEL gets the very
// config ADD got, after the file changed and the proxy restarted.
func TestAttachCNIArgs(t *testing.T) {
	e := newEnv(t, Config{}, map[string]string{
		"blue": `{"cniVersion": "1.0.0", "name": "blue", "disableCheck": true, "plugins": [
  {"type": "fakeplug", "args": {"cni": {"ips": ["10.1.0.5"], "keep": 1}, "other": "x"}, "big": 1},
  {"type": "otherplug"}]}`,
	})
	e.fakecniJSON(t, "plain", `{"cniVersion": "1.0.0", "name": "plain", "type": "fakeplug"}`)
	reqs := []Request{
		{Name: "blue", Interface: "net1", CNIArgs: json.RawMessage(` {"ips": ["10.1.0.9"], "new": {"a": [1, 2]}} `)},
		{Name: "plain", Interface: "net2", CNIArgs: json.RawMessage(`{"mac": "02:00:00:00:00:07"}`)},
	}
	if _, err := e.m.Attach(context.Background(), testPod, testNetNS, reqs); err != nil {
		t.Fatal(err)
	}
	// The recorded config keeps the network's other keys.
	if rec := e.m.record(testPod.SandboxID); rec == nil || !strings.Contains(string(rec.Attachments[0].Config), `"disableCheck":true`) ||
		!strings.Contains(string(rec.Attachments[0].Config), `"big":`) {
		t.Errorf("recorded config lost keys: %+v", rec)
	}
	// Identical again, but for whitespace: the same request.
	again := slices.Clone(reqs)
	again[0].CNIArgs = json.RawMessage(`{"ips":["10.1.0.9"],"new":{"a":[1,2]}}`)
	if _, err := e.m.Attach(context.Background(), testPod, testNetNS, again); err != nil {
		t.Errorf("repeated Attach: %v", err)
	}
	again[0].CNIArgs = json.RawMessage(`{"ips":["10.1.0.10"]}`)
	if _, err := e.m.Attach(context.Background(), testPod, testNetNS, again); err == nil || !strings.Contains(err.Error(), "another request") {
		t.Errorf("Attach with other cni-args: %v, want refused", err)
	}

	fakecni.WriteFile(t, e.netDir, "blue.conflist", fakecni.Conflist("blue", "1.0.0", "fakeplug"))
	e.store.Refresh(context.Background())
	m := e.restart(Config{})
	if err := m.Detach(context.Background(), testPod.SandboxID); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"blue/fakeplug":  `{"cni":{"ips":["10.1.0.9"],"keep":1,"new":{"a":[1,2]}},"other":"x"}`,
		"blue/otherplug": `{"cni":{"ips":["10.1.0.9"],"new":{"a":[1,2]}}}`,
		"plain/fakeplug": `{"cni":{"mac":"02:00:00:00:00:07"}}`,
	}
	calls := e.fe.Calls("")
	if len(calls) != 6 {
		t.Fatalf("%d plugin calls, want 3 ADDs and 3 DELs", len(calls))
	}
	for _, c := range calls {
		if got := stdinJSON(t, c, "args"); got != want[c.Network+"/"+c.Plugin] {
			t.Errorf("%s %s/%s: args %s, want %s", c.Cmd, c.Network, c.Plugin, got, want[c.Network+"/"+c.Plugin])
		}
	}
	e.assertNoLeak()
}

// fakecniJSON writes a network as a plain plugin config (.json) and reloads.
func (e *env) fakecniJSON(t *testing.T, name, content string) {
	t.Helper()
	fakecni.WriteFile(t, e.netDir, name+".json", content)
	e.store.Refresh(context.Background())
}

func TestWithCNIArgsErrors(t *testing.T) {
	for _, tc := range []struct {
		name, config, args, want string
	}{
		{"args not an object", `{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "p", "args": [1]}]}`, `{"a": 1}`,
			"config: plugin 0 (type p): args: not a JSON object but array"},
		{"args.cni not an object", `{"cniVersion": "1.0.0", "name": "n", "plugins": [{"type": "p"}, {"type": "q", "args": {"cni": "x"}}]}`, `{"a": 1}`,
			"config: plugin 1 (type q): args.cni: not a JSON object but string"},
		{"cni-args not an object", fakecni.Conflist("n", "1.0.0", "p"), `"x"`, "cni-args: not a JSON object but string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := withCNIArgs([]byte(tc.config), json.RawMessage(tc.args))
			if err == nil || err.Error() != tc.want {
				t.Errorf("withCNIArgs() error = %v, want %q", err, tc.want)
			}
		})
	}
	// No args, or null (a decoded null value): the config as it is.
	config := []byte(fakecni.Conflist("n", "1.0.0", "p"))
	for _, args := range []json.RawMessage{nil, json.RawMessage(" null ")} {
		if got, err := withCNIArgs(config, args); err != nil || &got[0] != &config[0] {
			t.Errorf("withCNIArgs(%q) = %s, %v; want the config itself", args, got, err)
		}
	}
}

// A default route that cannot be set fails Attach after its ADDs, naming
// the network and gateway, and rolls every network back. (The fake netns
// does not exist; the kernel's refusals are proven by the integration
// tests.)
func TestAttachDefaultRouteFailureRollsBack(t *testing.T) {
	e := newEnv(t, Config{}, fakeNetworks("blue", "red"))
	_, err := e.m.Attach(context.Background(), testPod, testNetNS, []Request{
		{Name: "blue", Interface: "net1"},
		{Name: "red", Interface: "net2", DefaultRoute: []string{"10.2.0.1"}},
	})
	if err == nil || !strings.Contains(err.Error(), `network "red" (interface net2): default route via 10.2.0.1: `) {
		t.Fatalf("error = %v, want one naming red and its gateway", err)
	}
	if adds, dels := len(e.fe.Calls("ADD")), len(e.fe.Calls("DEL")); adds != 2 || dels != 2 {
		t.Errorf("%d ADDs and %d DELs, want both networks added and deleted again", adds, dels)
	}
	e.assertNoLeak()
}

// Records written before the request keys existed load and detach.
func TestOldRecordLoads(t *testing.T) {
	e := newEnv(t, Config{}, fakeNetworks("blue"))
	// As the version before the keys wrote it (config in base64).
	config := mustJSON(t, []byte(fakecni.Conflist("blue", "1.0.0", "fakeplug")))
	old := `{"version":1,"pod":{"namespace":"ns1","name":"pod1","uid":"uid-1","attempt":0,"sandboxID":"sandbox1"},` +
		`"netns":"/var/run/netns/test-sandbox1","state":"attached","attachments":[{"network":"blue","interface":"net1",` +
		`"ips":["10.1.0.7/24"],"mac":"02:00:00:00:00:01","config":` + string(config) + `}]}`
	if err := os.WriteFile(filepath.Join(e.stateDir, "sandbox1.json"), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	e.fe.SetActive("blue", "sandbox1", "net1")
	m := e.restart(Config{})
	if got := m.Attachments("sandbox1"); len(got) != 1 || got[0].Network != "blue" {
		t.Fatalf("Attachments() = %v, want blue", got)
	}
	if err := m.Detach(context.Background(), "sandbox1"); err != nil {
		t.Fatal(err)
	}
	dels := e.fe.Calls("DEL")
	if len(dels) != 1 || stdinJSON(t, dels[0], "runtimeConfig") != `{"ips":["10.1.0.7/24"],"mac":"02:00:00:00:00:01"}` {
		t.Errorf("DEL calls = %+v, want one with the recorded ips and mac", dels)
	}
	e.assertNoLeak()
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A cached attachment whose record was lost is deleted with every
// capability arg of its ADD, read back from libcni's cache.
func TestReconcileDeletesUnrecordedWithCachedCapabilityArgs(t *testing.T) {
	conflist := fakecni.ConflistWithCapabilities("blue", "1.1.0", allCapabilities, "fakeplug")
	e := newEnv(t, Config{}, map[string]string{"blue": conflist})
	ctx := context.Background()
	req := Request{Interface: "net1", IPs: []string{"10.0.0.5/24"}, MAC: "02:00:00:00:00:05",
		PortMappings: []netrequest.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}},
		Bandwidth:    &netrequest.Bandwidth{EgressRate: 10, EgressBurst: 20}}
	cni := libcni.NewCNIConfigWithCacheDir([]string{"/fake/bin"}, e.cacheDir, e.fe)
	list, err := libcni.NetworkConfFromBytes([]byte(conflist))
	if err != nil {
		t.Fatal(err)
	}
	lost := PodRef{Namespace: "ns", Name: "lost", UID: "u-lost", SandboxID: "lost1"}
	if _, err := cni.AddNetworkList(ctx, list, runtimeConf(lost, "/var/run/netns/lost1", req)); err != nil {
		t.Fatal(err)
	}
	add := e.fe.Calls("ADD")[0]
	e.fe.ResetCalls()
	if err := e.m.Reconcile(ctx, Snapshot{Taken: e.clock()}); err != nil {
		t.Fatal(err)
	}
	dels := e.fe.Calls("DEL")
	if len(dels) != 1 {
		t.Fatalf("DEL calls = %+v, want one", dels)
	}
	if got, want := stdinJSON(t, dels[0], "runtimeConfig"), stdinJSON(t, add, "runtimeConfig"); got != want || !strings.Contains(got, "portMappings") {
		t.Errorf("DEL runtimeConfig = %s, want the ADD's %s", got, want)
	}
	e.assertNoLeak()
}

func TestCapabilityRequestReadsWhatItCan(t *testing.T) {
	got, err := capabilityRequest(map[string]interface{}{
		"ips": []interface{}{"10.0.0.5/24"}, "mac": 7, "bandwidth": map[string]interface{}{"ingressRate": 5.0},
		"portMappings": []interface{}{map[string]interface{}{"hostPort": 1.0, "containerPort": 2.0, "protocol": "tcp"}},
	})
	want := Request{IPs: []string{"10.0.0.5/24"}, Bandwidth: &netrequest.Bandwidth{IngressRate: 5},
		PortMappings: []netrequest.PortMapping{{HostPort: 1, ContainerPort: 2, Protocol: "tcp"}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("capabilityRequest() = %+v, want %+v", got, want)
	}
	if err == nil || !strings.Contains(err.Error(), `capability arg "mac"`) {
		t.Errorf("error = %v, want one naming mac", err)
	}
}
