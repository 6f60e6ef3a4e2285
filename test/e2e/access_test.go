//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"sigs.k8s.io/pod-networks/admission"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// accessCase is one pod the network access policy judges at creation.
type accessCase struct {
	ns, annotation string
	native         string // spec.networks as YAML, indented under spec
	allow          bool
	msg            string // in the refusal
}

// TestAccessPolicy runs the local cluster, which installs package
// admission's manifests, on the real apiserver: Network red is open to
// namespace team-a only and allows no static addresses; blue allows static
// IPs. Pods are judged in both annotation forms and by spec.networks, at
// creation and when an update changes the request; a changed Network judges
// new pods and leaves existing ones alone. Then node1's CRI proxy
// credential may write only its own annotations.
func TestAccessPolicy(t *testing.T) {
	ctx := t.Context()
	o := options(t)
	o.NodeNetworks = nativeNetworks(t) // node1: blue, red; node2: blue
	c := upCluster(t, o)
	cs := c.client(t)
	cfg, err := c.RESTConfig()
	if err != nil {
		t.Fatal(err)
	}
	dyn := dynamic.NewForConfigOrDie(cfg)
	for _, ns := range []string{"team-a", "team-b"} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, ns+" default service account", 30*time.Second, func(ctx context.Context) error {
			_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
			return err
		})
	}
	setNetwork(t, dyn, "red", map[string]any{"namespaces": []any{"team-a"}})
	setNetwork(t, dyn, "blue", map[string]any{"allowStaticIPs": true})
	waitRefused(t, c, accessCase{ns: "team-b", annotation: "red", msg: "network red is not allowed in namespace team-b"})

	const ipRed, macRed = `[{"name": "red", "ips": ["10.252.1.50/24"]}]`, `[{"name": "red", "mac": "02:00:00:00:00:01"}]`
	cases := []accessCase{
		{ns: "team-a", annotation: "red", allow: true},
		{ns: "team-b", annotation: "red", msg: "network red is not allowed in namespace team-b (Network red allows namespaces team-a)"},
		{ns: "team-b", annotation: "blue, red@data0", msg: "network red is not allowed in namespace team-b"},
		{ns: "team-b", annotation: "blue,reddish", allow: true},
		{ns: "team-b", annotation: `[{"name":"red"}]`, msg: "network red is not allowed in namespace team-b"},
		// NPWG's own layout: indentation and line breaks.
		{ns: "team-b", annotation: "[\n  {\n    \"name\": \"blue\"\n  },\n  {\n    \"name\" : \"red\",\n    \"interface\": \"data0\"\n  }\n]", msg: "not allowed in namespace team-b"},
		{ns: "team-a", annotation: "[\n  {\n    \"name\": \"blue\"\n  },\n  {\n    \"name\" : \"red\",\n    \"interface\": \"data0\"\n  }\n]", allow: true},
		// "red" elsewhere than a name is not a request for it.
		{ns: "team-b", annotation: `[{"name": "blue", "interface": "red", "cni-args": {"name": "red"}}]`, allow: true},
		// Forms the policy cannot judge are refused while Networks exist.
		{ns: "team-b", annotation: `[{"name": "re\u0064"}]`, msg: "cannot be judged by the network access policy"},
		{ns: "team-a", annotation: "\u00a0red", msg: "cannot be judged"},
		{ns: "team-a", annotation: `[{"name": "red", "cni-args": {"a": {"b": [1]}}}]`, msg: "cannot be judged"},
		{ns: "team-a", annotation: `[{"name": "red", "cni-args": {"k": "` + strings.Repeat("v", 2048) + `"}}]`, msg: "cannot be judged"},
		// ... but not when they cannot name a restricted network.
		{ns: "team-b", annotation: "\u00a0green", allow: true},
		{ns: "team-b", annotation: `[{"name": "green", "cni-args": {"k": "` + strings.Repeat("v", 100000) + `"}}]`, allow: true},
		// Static addresses.
		{ns: "team-a", annotation: ipRed, msg: "network red does not allow static IP addresses (ips) in namespace team-a"},
		{ns: "team-a", annotation: macRed, msg: "network red does not allow a static MAC address (mac) in namespace team-a"},
		{ns: "team-a", annotation: `[{"name": "red", "cni-args": {"ips": ["10.252.1.50/24"]}}]`, msg: "does not allow static IP addresses"},
		{ns: "team-a", annotation: `[{"name": "red", "cni-args": {"mac": "02:00:00:00:00:01"}}]`, msg: "does not allow a static MAC address"},
		{ns: "team-b", annotation: `[{"name": "blue", "ips": ["10.251.1.50/24"]}]`, allow: true},
		{ns: "team-b", annotation: `[{"name": "blue", "mac": "02:00:00:00:00:01"}]`, msg: "network blue does not allow a static MAC address (mac) in namespace team-b"},
		// A network without a Network object is open.
		{ns: "team-b", annotation: `[{"name": "green", "ips": ["10.0.0.5/24"], "mac": "02:00:00:00:00:01"}]`, allow: true},
		// The native field.
		{ns: "team-b", native: "  networks:\n  - name: red\n", msg: "network red is not allowed in namespace team-b"},
		{ns: "team-a", native: "  networks:\n  - name: blue\n  - name: red\n", allow: true},
	}
	for i, tc := range cases {
		out, err := createPod(t, c, tc.ns, fmt.Sprintf("case%d", i), tc, true)
		switch {
		case tc.allow && err != nil:
			t.Errorf("case %d (%s, %.60q, %q): refused: %s", i, tc.ns, tc.annotation, tc.native, out)
		case !tc.allow && err == nil:
			t.Errorf("case %d (%s, %.60q, %q): admitted, want refused with %q", i, tc.ns, tc.annotation, tc.native, tc.msg)
		case !tc.allow && !strings.Contains(out, tc.msg):
			t.Errorf("case %d (%s, %.60q, %q): refused with %s, want %q", i, tc.ns, tc.annotation, tc.native, out, tc.msg)
		}
	}

	// Real pods: an admitted one runs with its network; the refused one
	// does not exist.
	if out, err := createPod(t, c, "team-a", "red-a", accessCase{annotation: "red"}, false); err != nil {
		t.Fatalf("red-a: %s", out)
	}
	if out, err := createPod(t, c, "team-a", "native-a", accessCase{native: "  networks:\n  - name: red\n"}, false); err != nil {
		t.Fatalf("native-a: %s", out)
	}
	for _, name := range []string{"red-a", "native-a"} {
		waitFor(t, name+" Running on node1 with net1", 90*time.Second, runningWithNet1(c, cs, "team-a", name))
	}
	if out, err := createPod(t, c, "team-b", "red-b", accessCase{annotation: "red"}, false); err == nil {
		t.Errorf("red-b created in team-b: %s", out)
	}

	// An update that changes the request is judged; one that leaves it
	// alone is not (red-a keeps running under the rule below too).
	patch := func(ns, name, p string) error {
		_, err := cs.CoreV1().Pods(ns).Patch(ctx, name, types.MergePatchType, []byte(p), metav1.PatchOptions{})
		return err
	}
	if err := patch("team-a", "red-a", `{"metadata":{"annotations":{"`+netrequest.AnnotationKey+`":"red,blue"}}}`); err != nil {
		t.Errorf("team-a: changing red-a's request to red,blue: %v", err)
	}
	if err := patch("team-a", "red-a", `{"metadata":{"annotations":{"`+netrequest.AnnotationKey+`":`+jsonString(ipRed)+`}}}`); err == nil || !strings.Contains(err.Error(), "does not allow static IP addresses") {
		t.Errorf("team-a: changing red-a's request to a static IP: %v, want refused", err)
	}

	// The Network changes: red is now team-b's only. New pods follow the
	// new rule; existing ones are untouched, and updates that leave their
	// request alone are still admitted.
	setNetwork(t, dyn, "red", map[string]any{"namespaces": []any{"team-b"}})
	waitRefused(t, c, accessCase{ns: "team-a", annotation: "red", msg: "network red is not allowed in namespace team-a (Network red allows namespaces team-b)"})
	if out, err := createPod(t, c, "team-b", "red-b", accessCase{annotation: "red"}, false); err != nil {
		t.Errorf("red-b refused in team-b after the change: %s", out)
	}
	for _, name := range []string{"red-a", "native-a"} {
		if err := runningWithNet1(c, cs, "team-a", name)(ctx); err != nil {
			t.Errorf("existing pod after the Network changed: %v", err)
		}
		if err := patch("team-a", name, `{"metadata":{"labels":{"touched":"yes"}}}`); err != nil {
			t.Errorf("team-a: label on %s after the Network changed: %v", name, err)
		}
	}
	if err := patch("team-a", "red-a", `{"metadata":{"annotations":{"`+netrequest.AnnotationKey+`":"red"}}}`); err == nil || !strings.Contains(err.Error(), "not allowed in namespace team-a") {
		t.Errorf("team-a: changing red-a's request after the Network changed: %v, want refused", err)
	}
	// A status update keeps the metadata it sends: it is judged too.
	_, err = cs.CoreV1().Pods("team-a").Patch(ctx, "red-a", types.MergePatchType,
		[]byte(`{"metadata":{"annotations":{"`+netrequest.AnnotationKey+`":"red"}}}`), metav1.PatchOptions{}, "status")
	if err == nil || !strings.Contains(err.Error(), "not allowed in namespace team-a") {
		t.Errorf("team-a: changing red-a's request through pods/status: %v, want refused", err)
	}

	t.Run("hostile request, short errors", func(t *testing.T) { testHostileRequest(t, cs, c) })
	t.Run("cri-proxy credential", func(t *testing.T) { testProxyCredential(t, c, cs) })

	c.downAndCompare(t, "access policy cluster up then down")
}

// maxErrorText bounds what a request's error may add to a message a user
// reads: netrequest.MaxErrorLen plus the wrapping of the scheduler or of
// kubelet and gRPC.
const maxErrorText = netrequest.MaxErrorLen + 1024

// testHostileRequest sends the largest request the API allows, 256 KiB of
// annotations, as one network name: the scheduler's PodScheduled condition
// and, for a pod bound by nodeName, kubelet's FailedCreatePodSandBox event
// (carrying the proxy's gRPC error) stay short and name the problem.
func testHostileRequest(t *testing.T, cs kubernetes.Interface, c *testCluster) {
	ctx := t.Context()
	hostile := strings.Repeat("a", 255<<10)
	for name, node := range map[string]string{"hostile-scheduled": "", "hostile-bound": "node1"} {
		pod, err := c.ToolboxPod(name, "")
		if err != nil {
			t.Fatal(err)
		}
		pod.Spec.NodeSelector, pod.Spec.NodeName = nil, node
		pod.Annotations = map[string]string{netrequest.AnnotationKey: hostile}
		if _, err := cs.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatalf("%s: %.300v", name, err)
		}
	}
	var cond string
	waitFor(t, "hostile-scheduled's PodScheduled condition", 60*time.Second, func(ctx context.Context) error {
		p, err := cs.CoreV1().Pods("default").Get(ctx, "hostile-scheduled", metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse && c.Message != "" {
				cond = c.Message
				return nil
			}
		}
		return errors.New("no PodScheduled=False condition yet")
	})
	event := waitEvent(t, cs, "hostile-bound", "FailedCreatePodSandBox", "networks[0]")
	for what, msg := range map[string]string{"PodScheduled condition": cond, "FailedCreatePodSandBox event": event} {
		t.Logf("%s: %d bytes", what, len(msg))
		if len(msg) > maxErrorText || !strings.Contains(msg, "networks[0]") || !strings.Contains(msg, "DNS-1123") {
			t.Errorf("%s of a 255 KiB request: %d bytes (want <= %d) naming networks[0] and the DNS-1123 rule: %.2000s", what, len(msg), maxErrorText, msg)
		}
	}
}

// testProxyCredential uses node1's CRI proxy credential: it may write its
// own node's networks annotation and the network-status annotation of pods
// bound to node1, and nothing else.
func testProxyCredential(t *testing.T, c *testCluster, admin kubernetes.Interface) {
	ctx := t.Context()
	cfg, err := clientcmd.BuildConfigFromFlags("", c.ProxyKubeconfig("node1"))
	if err != nil {
		t.Fatal(err)
	}
	proxy := kubernetes.NewForConfigOrDie(cfg)
	for _, node := range []string{"node1", "node2"} {
		pod, err := c.ToolboxPod("on-"+node, node)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := admin.CoreV1().Pods("default").Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	node1, err := admin.CoreV1().Nodes().Get(ctx, "node1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ann := func(key, value string) []byte {
		return []byte(`{"metadata":{"annotations":{"` + key + `":` + jsonString(value) + `}}}`)
	}
	nodePatch := func(name string, p []byte) error {
		_, err := proxy.CoreV1().Nodes().Patch(ctx, name, types.MergePatchType, p, metav1.PatchOptions{})
		return err
	}
	podPatch := func(name string, p []byte) error {
		_, err := proxy.CoreV1().Pods("default").Patch(ctx, name, types.MergePatchType, p, metav1.PatchOptions{})
		return err
	}
	allowed := map[string]error{
		// The value the proxy published: rewriting it changes nothing.
		"own node, networks annotation":   nodePatch("node1", ann(netrequest.AnnotationKey, node1.Annotations[netrequest.AnnotationKey])),
		"pod on own node, network-status": podPatch("on-node1", ann(netrequest.StatusAnnotationKey, "[]")),
	}
	for what, err := range allowed {
		if err != nil {
			t.Errorf("%s: %v, want allowed", what, err)
		}
	}
	forbidden := map[string]error{
		"other node":                          nodePatch("node2", ann(netrequest.AnnotationKey, "blue")),
		"own node, label":                     nodePatch("node1", []byte(`{"metadata":{"labels":{"evil":"yes"}}}`)),
		"own node, other annotation":          nodePatch("node1", ann("evil", "yes")),
		"own node, spec":                      nodePatch("node1", []byte(`{"spec":{"unschedulable":true}}`)),
		"pod on other node":                   podPatch("on-node2", ann(netrequest.StatusAnnotationKey, "[]")),
		"pod on own node, spec":               podPatch("on-node1", []byte(`{"spec":{"activeDeadlineSeconds":5}}`)),
		"pod on own node, label":              podPatch("on-node1", []byte(`{"metadata":{"labels":{"evil":"yes"}}}`)),
		"pod on own node, other key":          podPatch("on-node1", ann("evil", "yes")),
		"pod on own node, networks":           podPatch("on-node1", ann(netrequest.AnnotationKey, "blue")),
		"pod on own node, delete":             proxy.CoreV1().Pods("default").Delete(ctx, "on-node1", metav1.DeleteOptions{}),
		"pod on own node, status":             patchPodStatus(ctx, proxy, "on-node1"),
		"create a node":                       createNode(ctx, proxy, "node9"),
		"read pods (only patches are needed)": getPod(ctx, proxy, "on-node1"),
	}
	for what, err := range forbidden {
		if !apierrors.IsForbidden(err) {
			t.Errorf("%s: %v, want Forbidden", what, err)
		}
	}
	// The messages say why.
	if err := forbidden["other node"]; err != nil && !strings.Contains(err.Error(), "the CRI proxy of node node1 may not write node node2") {
		t.Errorf("other node: %v", err)
	}
	if err := forbidden["pod on other node"]; err != nil && !strings.Contains(err.Error(), "which is not bound to its node") {
		t.Errorf("pod on other node: %v", err)
	}
}

func patchPodStatus(ctx context.Context, cs kubernetes.Interface, name string) error {
	_, err := cs.CoreV1().Pods("default").Patch(ctx, name, types.MergePatchType, []byte(`{"status":{"message":"x"}}`), metav1.PatchOptions{}, "status")
	return err
}

func createNode(ctx context.Context, cs kubernetes.Interface, name string) error {
	_, err := cs.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	return err
}

func getPod(ctx context.Context, cs kubernetes.Interface, name string) error {
	_, err := cs.CoreV1().Pods("default").Get(ctx, name, metav1.GetOptions{})
	return err
}

// setNetwork creates or replaces the Network name with spec.
func setNetwork(t *testing.T, dyn dynamic.Interface, name string, spec map[string]any) {
	t.Helper()
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.x-k8s.io/v1alpha1", "kind": "Network",
		"metadata": map[string]any{"name": name}, "spec": spec,
	}}
	if _, err := dyn.Resource(admission.NetworkResource).Apply(t.Context(), name, u, metav1.ApplyOptions{FieldManager: "e2e", Force: true}); err != nil {
		t.Fatalf("apply Network %s: %v", name, err)
	}
}

// waitRefused waits until the policy refuses tc: its parameters reach the
// apiserver's admission through an informer.
func waitRefused(t *testing.T, c *testCluster, tc accessCase) {
	t.Helper()
	waitFor(t, fmt.Sprintf("the policy refuses %q in %s", tc.annotation, tc.ns), 30*time.Second, func(context.Context) error {
		out, err := createPod(t, c, tc.ns, "probe", tc, true)
		if err == nil {
			return errors.New("admitted")
		}
		if !strings.Contains(out, tc.msg) {
			return fmt.Errorf("refused with %s", out)
		}
		return nil
	})
}

// createPod creates a toolbox pod in ns with kubectl (this module's API
// types lack spec.networks), dry-run on the server (admission runs, nothing
// is stored) when dryRun is set. It returns kubectl's output.
func createPod(t *testing.T, c *testCluster, ns, name string, tc accessCase, dryRun bool) (string, error) {
	t.Helper()
	image, err := c.ToolboxImage()
	if err != nil {
		t.Fatal(err)
	}
	ann := ""
	if tc.annotation != "" {
		ann = fmt.Sprintf("  annotations:\n    %s: %s\n", netrequest.AnnotationKey, jsonString(tc.annotation))
	}
	manifest := fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: %s
%sspec:
  terminationGracePeriodSeconds: 0
%s  containers:
  - name: toolbox
    image: %s
    imagePullPolicy: Never
    command: ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 86400 & wait"]
`, name, ns, ann, tc.native, image)
	f := filepath.Join(t.TempDir(), name+".yaml")
	if err := os.WriteFile(f, []byte(manifest), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"create", "-f", f}
	if dryRun {
		args = append(args, "--dry-run=server")
	}
	return c.Kubectl(t.Context(), args...)
}

// runningWithNet1 is a waitFor condition: the pod runs on node1 and its
// network-status lists net1.
func runningWithNet1(c *testCluster, cs kubernetes.Interface, ns, name string) func(context.Context) error {
	return func(ctx context.Context) error {
		p, err := cs.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if p.Status.Phase != corev1.PodRunning || p.Spec.NodeName != "node1" {
			return fmt.Errorf("%s/%s: %s on %q", ns, name, p.Status.Phase, p.Spec.NodeName)
		}
		out, err := c.Kubectl(ctx, "exec", "-n", ns, name, "--", "ip", "-o", "link", "show", "net1")
		if err != nil {
			return fmt.Errorf("%s/%s: no net1: %v: %s", ns, name, err, out)
		}
		return nil
	}
}

// jsonString quotes s as a JSON (and YAML) string.
func jsonString(s string) string {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // a string always marshals
	}
	return string(b)
}
