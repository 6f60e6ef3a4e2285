//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// demoResult is the format of the demo's result file
// (hack/localcluster/app.DemoResult) as this test reads it, written out
// apart from the writer's type on purpose: a field the demo renames or adds
// fails the strict decode, one it drops or leaves null fails requireKeys,
// and each field's value is checked by checkDemoResult.
type demoResult struct {
	BringUp struct {
		Nodes         int     `json:"nodes"`
		ReadySeconds  float64 `json:"readySeconds"`
		TargetSeconds float64 `json:"targetSeconds"`
		Steps         []struct {
			Step    string  `json:"step"`
			Seconds float64 `json:"seconds"`
		} `json:"steps"`
	} `json:"bringUp"`
	Pods struct {
		Pods []struct {
			Name     string `json:"name"`
			Node     string `json:"node"`
			Subnet   string `json:"subnet"`
			StatusIP string `json:"statusIP"`
			Eth0IP   string `json:"eth0IP"`
		} `json:"pods"`
		RunningSeconds float64 `json:"runningSeconds"`
	} `json:"pods"`
	Networks struct {
		Published []demoNodeNetworks `json:"published"`
		Status    []demoNodeNetworks `json:"status"`
		Multi     struct {
			Pod            string          `json:"pod"`
			Request        []string        `json:"request"`
			Node           string          `json:"node"`
			RunningSeconds float64         `json:"runningSeconds"`
			Inside         []demoInterface `json:"inside"`
			Status         []struct {
				Interface string   `json:"interface"`
				Network   string   `json:"network"`
				IPs       []string `json:"ips"`
				Default   bool     `json:"default"`
			} `json:"status"`
		} `json:"multi"`
		Native struct {
			Pod            string               `json:"pod"`
			Request        []demoNetworkRequest `json:"request"`
			Node           string               `json:"node"`
			RunningSeconds float64              `json:"runningSeconds"`
			Inside         []demoInterface      `json:"inside"`
			Refused        struct {
				Pod     string               `json:"pod"`
				Node    string               `json:"node"`
				Request []demoNetworkRequest `json:"request"`
				Phase   string               `json:"phase"`
				Reason  string               `json:"reason"`
				Message string               `json:"message"`
			} `json:"refused"`
		} `json:"native"`
		Pending struct {
			Pod              string   `json:"pod"`
			Request          []string `json:"request"`
			Reason           string   `json:"reason"`
			GainedBy         string   `json:"gainedBy"`
			ScheduledOn      string   `json:"scheduledOn"`
			ScheduledSeconds float64  `json:"scheduledSeconds"`
		} `json:"pending"`
		Broken struct {
			Pod          string   `json:"pod"`
			Request      []string `json:"request"`
			Node         string   `json:"node"`
			Phase        string   `json:"phase"`
			Event        string   `json:"event"`
			EventSeconds float64  `json:"eventSeconds"`
		} `json:"broken"`
		Access struct {
			Network    string   `json:"network"`
			Namespaces []string `json:"namespaces"`
			Pod        string   `json:"pod"`
			Request    string   `json:"request"`
			Refused    struct {
				Namespace string `json:"namespace"`
				Message   string `json:"message"`
			} `json:"refused"`
			Admitted struct {
				Namespace      string          `json:"namespace"`
				Node           string          `json:"node"`
				RunningSeconds float64         `json:"runningSeconds"`
				Inside         []demoInterface `json:"inside"`
			} `json:"admitted"`
		} `json:"access"`
	} `json:"networks"`
	Leases struct {
		Deleted []string `json:"deleted"`
		Counts  []struct {
			Node    string `json:"node"`
			Network string `json:"network"`
			Before  int    `json:"before"`
			After   int    `json:"after"`
		} `json:"counts"`
		Before          int     `json:"before"`
		ReleasedSeconds float64 `json:"releasedSeconds"`
	} `json:"leases"`
	Next struct {
		Kubeconfig   string `json:"kubeconfig"`
		Kubectl      string `json:"kubectl"`
		ToolboxImage string `json:"toolboxImage"`
		Logs         string `json:"logs"`
	} `json:"next"`
}

type demoInterface struct {
	Interface string `json:"interface"`
	Address   string `json:"address"`
}

type demoNetworkRequest struct {
	Name          string `json:"name"`
	InterfaceName string `json:"interfaceName"`
}

type demoNodeNetworks struct {
	Node     string   `json:"node"`
	Networks []string `json:"networks"`
}

// decodeDemoResult decodes the result file strictly: no unknown field, no
// trailing data, and every field of demoResult present and not null (the
// default demo runs every section).
func decodeDemoResult(t *testing.T, raw []byte) demoResult {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var r demoResult
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("demo result: %v\n%s", err, raw)
	}
	if dec.More() {
		t.Fatalf("demo result: data after the object:\n%s", raw)
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		t.Fatal(err)
	}
	if missing := requireKeys(generic, reflect.TypeOf(r), "result"); len(missing) > 0 {
		t.Fatalf("demo result lacks:\n  %s\n%s", strings.Join(missing, "\n  "), raw)
	}
	return r
}

// requireKeys lists the fields of typ that v, decoded JSON, lacks or holds
// null, by path.
func requireKeys(v any, typ reflect.Type, path string) []string {
	if v == nil {
		return []string{path + " is null"}
	}
	switch typ.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return []string{fmt.Sprintf("%s is %T, not an object", path, v)}
		}
		var out []string
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			fv, ok := m[name]
			if !ok {
				out = append(out, path+"."+name+" is missing")
				continue
			}
			out = append(out, requireKeys(fv, f.Type, path+"."+name)...)
		}
		return out
	case reflect.Slice:
		l, ok := v.([]any)
		if !ok {
			return []string{fmt.Sprintf("%s is %T, not an array", path, v)}
		}
		var out []string
		for i, e := range l {
			out = append(out, requireKeys(e, typ.Elem(), fmt.Sprintf("%s[%d]", path, i))...)
		}
		return out
	}
	return nil
}

// checkDemoResult checks every field of the default demo's result: three
// nodes, node3 without a CRI proxy, and the networks of hack/demo/networks
// (node1 blue, broken and red, node2 blue).
func checkDemoResult(t *testing.T, r demoResult) {
	t.Helper()
	seconds := func(what string, v float64) {
		t.Helper()
		if !(v > 0) || math.IsInf(v, 0) {
			t.Errorf("%s = %v s, want a time > 0", what, v)
		}
	}
	in := func(what, addr, cidr string) {
		t.Helper()
		ip, _, err := net.ParseCIDR(addr)
		if err != nil {
			ip = net.ParseIP(addr)
		}
		_, sn, err := net.ParseCIDR(cidr)
		if ip == nil || err != nil || !sn.Contains(ip) {
			t.Errorf("%s = %q, want an address in %s", what, addr, cidr)
		}
	}

	b := r.BringUp
	if b.Nodes != 3 || b.TargetSeconds != 20 {
		t.Errorf("bring-up: %d nodes, target %vs; want 3 nodes, target 20s", b.Nodes, b.TargetSeconds)
	}
	seconds("bring-up", b.ReadySeconds)
	if len(b.Steps) == 0 || b.Steps[len(b.Steps)-1].Step != "all nodes Ready" || b.Steps[len(b.Steps)-1].Seconds != b.ReadySeconds {
		t.Errorf("bring-up steps %+v: want them to end with all nodes Ready at %vs", b.Steps, b.ReadySeconds)
	}
	for i, s := range b.Steps {
		if s.Step == "" || s.Seconds < 0 || (i > 0 && s.Seconds < b.Steps[i-1].Seconds) {
			t.Errorf("bring-up step %d %+v: want a name and a time after the step before", i, s)
		}
	}

	if len(r.Pods.Pods) != 3 {
		t.Errorf("one pod per node: %d pods, want 3: %+v", len(r.Pods.Pods), r.Pods.Pods)
	}
	subnets := map[string]bool{}
	for i, p := range r.Pods.Pods {
		node := fmt.Sprintf("node%d", i+1)
		if p.Name != "demo-"+node || p.Node != node {
			t.Errorf("pod %d: %s on %s, want demo-%s on %s", i, p.Name, p.Node, node, node)
		}
		in(p.Name+" status IP", p.StatusIP, p.Subnet)
		if p.Eth0IP != p.StatusIP {
			t.Errorf("%s: eth0 inside the pod has %q, its status %q", p.Name, p.Eth0IP, p.StatusIP)
		}
		subnets[p.Subnet] = true
	}
	if len(subnets) != len(r.Pods.Pods) {
		t.Errorf("the nodes share pod subnets: %+v", r.Pods.Pods)
	}
	seconds("pods created to Running", r.Pods.RunningSeconds)

	n := r.Networks
	want := []demoNodeNetworks{{"node1", []string{"blue", "broken", "red"}}, {"node2", []string{"blue"}}}
	if !reflect.DeepEqual(n.Published, want) {
		t.Errorf("published networks %+v, want %+v", n.Published, want)
	}
	if want := append(want, demoNodeNetworks{"node3", []string{}}); !reflect.DeepEqual(n.Status, want) {
		t.Errorf("status.networks %+v, want %+v", n.Status, want)
	}

	m := n.Multi
	if m.Pod != "demo-networks" || !slices.Equal(m.Request, []string{"blue", "red"}) || m.Node != "node1" {
		t.Errorf("multi-network pod %s asking for %v on %s, want demo-networks asking for [blue red] on node1 (the node with both)", m.Pod, m.Request, m.Node)
	}
	seconds("multi-network pod created to Running", m.RunningSeconds)
	inside := map[string]string{}
	for _, i := range m.Inside {
		inside[i.Interface], _, _ = strings.Cut(i.Address, "/")
	}
	wantInside := map[string]string{"net1": "10.251.1.0/24", "net2": "10.252.1.0/24"}
	for ifname, subnet := range wantInside {
		in(m.Pod+" "+ifname+" inside", inside[ifname], subnet)
	}
	if _, ok := inside["eth0"]; !ok || len(inside) != 3 {
		t.Errorf("%s: interfaces inside %+v, want eth0, net1 and net2", m.Pod, m.Inside)
	}
	var status []string
	for _, s := range m.Status {
		network := s.Network
		if s.Default && network != "" {
			network = "(the primary network)" // named by the proxy's flags
		}
		status = append(status, fmt.Sprintf("%s %s %s default=%t", s.Interface, network, strings.Join(s.IPs, ","), s.Default))
	}
	wantStatus := []string{
		fmt.Sprintf("eth0 (the primary network) %s default=true", inside["eth0"]),
		fmt.Sprintf("net1 blue %s default=false", inside["net1"]),
		fmt.Sprintf("net2 red %s default=false", inside["net2"]),
	}
	if !slices.Equal(status, wantStatus) {
		t.Errorf("%s: network-status %q, want %q (the addresses seen inside)", m.Pod, status, wantStatus)
	}

	nv := n.Native
	if nv.Pod != "demo-native" || !slices.Equal(nv.Request, []demoNetworkRequest{{"blue", ""}, {"red", "data0"}}) || nv.Node != "node1" {
		t.Errorf("native pod %s asking for %v on %s, want demo-native asking for [{blue} {red data0}] on node1", nv.Pod, nv.Request, nv.Node)
	}
	seconds("native pod created to Running", nv.RunningSeconds)
	nativeInside := map[string]string{}
	for _, i := range nv.Inside {
		nativeInside[i.Interface], _, _ = strings.Cut(i.Address, "/")
	}
	for ifname, subnet := range map[string]string{"eth0": "10.244.1.0/24", "net1": "10.251.1.0/24", "data0": "10.252.1.0/24"} {
		in(nv.Pod+" "+ifname+" inside", nativeInside[ifname], subnet)
	}
	if len(nativeInside) != 3 {
		t.Errorf("%s: interfaces inside %+v, want eth0, net1 and data0", nv.Pod, nv.Inside)
	}
	rf := nv.Refused
	if rf.Pod != "demo-refused" || rf.Node != "node3" || rf.Phase != "Failed" || rf.Reason != "PodFeatureUnsupported" || !strings.Contains(rf.Message, "PodNetworks") {
		t.Errorf("refused pod %+v: want demo-refused on node3, Failed, PodFeatureUnsupported, naming PodNetworks", rf)
	}

	p := n.Pending
	if p.Pod != "demo-green" || !slices.Equal(p.Request, []string{"green"}) || p.GainedBy != "node2" || p.ScheduledOn != "node2" {
		t.Errorf("pending pod %s asking for %v, scheduled on %s after %s gained it; want demo-green, [green], node2, node2", p.Pod, p.Request, p.ScheduledOn, p.GainedBy)
	}
	if !strings.Contains(p.Reason, "didn't have the requested network(s)") || !strings.Contains(p.Reason, "green") {
		t.Errorf("pending pod's FailedScheduling reason %q does not name green", p.Reason)
	}
	seconds("node gains green to the pod scheduled", p.ScheduledSeconds)

	br := n.Broken
	if br.Pod != "demo-broken" || !slices.Equal(br.Request, []string{"broken"}) || br.Node != "node1" || br.Phase != "Pending" {
		t.Errorf("broken pod %s asking for %v on %s, %s; want demo-broken asking for [broken] on node1, Pending", br.Pod, br.Request, br.Node, br.Phase)
	}
	for _, w := range []string{`network "broken"`, "no_such_setting"} {
		if !strings.Contains(br.Event, w) {
			t.Errorf("broken pod's event %q does not mention %q", br.Event, w)
		}
	}
	seconds("broken pod created to its event", br.EventSeconds)

	ac := n.Access
	if ac.Network != "red" || !slices.Equal(ac.Namespaces, []string{"team-a"}) || ac.Pod != "demo-access" || ac.Request != "red" {
		t.Errorf("access: Network %s for %v, pod %s asking for %q; want red for [team-a], demo-access asking for red", ac.Network, ac.Namespaces, ac.Pod, ac.Request)
	}
	if want := "network red is not allowed in namespace team-b (Network red allows namespaces team-a)"; ac.Refused.Namespace != "team-b" || !strings.Contains(ac.Refused.Message, want) {
		t.Errorf("access: refused in %s with %q; want team-b, with %q", ac.Refused.Namespace, ac.Refused.Message, want)
	}
	accessInside := map[string]string{}
	for _, i := range ac.Admitted.Inside {
		accessInside[i.Interface], _, _ = strings.Cut(i.Address, "/")
	}
	if ac.Admitted.Namespace != "team-a" || ac.Admitted.Node != "node1" || len(accessInside) != 2 {
		t.Errorf("access: admitted %+v; want in team-a, on node1 (the node with red), with eth0 and net1", ac.Admitted)
	}
	in("access pod net1 inside", accessInside["net1"], "10.252.1.0/24")
	seconds("access pod created to Running", ac.Admitted.RunningSeconds)

	l := r.Leases
	if want := []string{"demo-broken", "demo-green", "demo-native", "demo-networks", "demo-node1", "demo-node2", "demo-node3", "demo-refused", "team-a/demo-access"}; !slices.Equal(l.Deleted, want) {
		t.Errorf("deleted %v, want %v", l.Deleted, want)
	}
	minBefore := map[string]int{"node1/primary-node1": 4, "node1/blue": 2, "node1/red": 3, "node1/broken": 0,
		"node2/primary-node2": 1, "node2/blue": 0, "node2/green": 1, "node3/primary-node3": 1}
	sum := 0
	for _, c := range l.Counts {
		key := c.Node + "/" + c.Network
		minimum, ok := minBefore[key]
		if !ok {
			t.Errorf("lease count of an unexpected network %s: %+v", key, c)
		}
		delete(minBefore, key)
		if c.Before < minimum || c.After != 0 {
			t.Errorf("leases of %s: %d before, %d after; want at least %d before and 0 after", key, c.Before, c.After, minimum)
		}
		sum += c.Before
	}
	if len(minBefore) > 0 {
		t.Errorf("no lease count for %v", minBefore)
	}
	if l.Before != sum {
		t.Errorf("leases before: %d in all, the counts add up to %d", l.Before, sum)
	}
	seconds("demo pods deleted to every lease released", l.ReleasedSeconds)

	x := r.Next
	for _, f := range []string{x.Kubeconfig, x.Kubectl} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("next steps: %v", err)
		}
	}
	if x.ToolboxImage == "" || !strings.Contains(x.Logs, "<component>") {
		t.Errorf("next steps: toolbox image %q, logs %q; want an image and a path with <component>", x.ToolboxImage, x.Logs)
	}
}
