package app

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// DemoResultFile is the name of the demo's result in the state dir, where
// `localcluster demo` writes it unless -result-json says otherwise.
const DemoResultFile = "demo-result.json"

// DemoResult is what `localcluster demo` found, as data. The demo's human
// output is rendered from it alone (RenderDemo), section by section as the
// demo goes, and the demo writes it as JSON (-result-json). Times are in
// seconds. Every field is always written: Networks is null when the networks
// scenario did not run (it needs the CRI proxy, the network scheduler and
// node networks), Networks.Status when kubelet does not publish
// node.status.networks (stock binaries or the gate off), Networks.Native
// too, Networks.Native.Refused when every node runs a CRI proxy,
// Networks.Broken when no node has the network "broken".
type DemoResult struct {
	BringUp  DemoBringUp   `json:"bringUp"`
	Pods     DemoPods      `json:"pods"`
	Networks *DemoNetworks `json:"networks"`
	Leases   DemoLeases    `json:"leases"`
	Next     DemoNext      `json:"next"`
}

// DemoBringUp is the bring-up of the cluster.
type DemoBringUp struct {
	Nodes         int        `json:"nodes"`
	ReadySeconds  float64    `json:"readySeconds"`  // start to all nodes Ready
	TargetSeconds float64    `json:"targetSeconds"` // what the project aims for
	Steps         []DemoStep `json:"steps"`         // milestones; the last is all nodes Ready
}

// DemoStep is a bring-up milestone and when it was reached.
type DemoStep struct {
	Step    string  `json:"step"`
	Seconds float64 `json:"seconds"`
}

// DemoPods are the pods placed one per node.
type DemoPods struct {
	Pods           []DemoPod `json:"pods"`
	RunningSeconds float64   `json:"runningSeconds"` // created to all Running, addresses checked
}

// DemoPod is a pod with its address in the pod status and on eth0 inside.
type DemoPod struct {
	Name     string `json:"name"`
	Node     string `json:"node"`
	Subnet   string `json:"subnet"` // the node's pod subnet
	StatusIP string `json:"statusIP"`
	Eth0IP   string `json:"eth0IP"`
}

// DemoNetworks is the networks scenario (demo_networks.go).
type DemoNetworks struct {
	Published []DemoNodeNetworks `json:"published"` // the CRI proxies' node annotation
	Status    []DemoNodeNetworks `json:"status"`    // node.status.networks (patched kubelet, gate on)
	Multi     DemoMultiPod       `json:"multi"`
	Native    *DemoNativePods    `json:"native"`
	Pending   DemoPendingPod     `json:"pending"`
	Broken    *DemoBrokenPod     `json:"broken"`
	Access    DemoAccess         `json:"access"`
}

// DemoNodeNetworks are the networks a node has.
type DemoNodeNetworks struct {
	Node     string   `json:"node"`
	Networks []string `json:"networks"`
}

// DemoMultiPod is a pod asking for extra networks, placed by the scheduler.
type DemoMultiPod struct {
	Pod            string           `json:"pod"`
	Request        []string         `json:"request"`
	Node           string           `json:"node"`
	RunningSeconds float64          `json:"runningSeconds"` // created to Running
	Inside         []DemoInterface  `json:"inside"`         // ip -4 -o addr in the pod, without lo
	Status         []DemoAttachment `json:"status"`         // the pod's network-status annotation
}

// DemoNativePods is the native API at work: a pod asking through
// spec.networks, placed by the scheduler, and a pod bound by nodeName to a
// node whose runtime cannot attach networks, refused by its kubelet.
type DemoNativePods struct {
	Pod            string               `json:"pod"`
	Request        []DemoNetworkRequest `json:"request"` // spec.networks
	Node           string               `json:"node"`
	RunningSeconds float64              `json:"runningSeconds"` // created to Running
	Inside         []DemoInterface      `json:"inside"`         // ip -4 -o addr in the pod, without lo
	Refused        *DemoRefusedPod      `json:"refused"`
}

// DemoNetworkRequest is an entry of spec.networks.
type DemoNetworkRequest struct {
	Name          string `json:"name"`
	InterfaceName string `json:"interfaceName"` // "" lets the runtime choose
}

// DemoRefusedPod is a pod kubelet refused to run.
type DemoRefusedPod struct {
	Pod     string               `json:"pod"`
	Node    string               `json:"node"` // spec.nodeName
	Request []DemoNetworkRequest `json:"request"`
	Phase   string               `json:"phase"`
	Reason  string               `json:"reason"` // status.reason
	Message string               `json:"message"`
}

// DemoInterface is an interface address seen inside a pod.
type DemoInterface struct {
	Interface string `json:"interface"`
	Address   string `json:"address"` // CIDR
}

// DemoAttachment is an entry of a pod's network-status annotation.
type DemoAttachment struct {
	Interface string   `json:"interface"`
	Network   string   `json:"network"`
	IPs       []string `json:"ips"`
	Default   bool     `json:"default"`
}

// DemoPendingPod is a pod asking for a network no node has, until a node
// gains it.
type DemoPendingPod struct {
	Pod              string   `json:"pod"`
	Request          []string `json:"request"`
	Reason           string   `json:"reason"`           // the FailedScheduling event's message
	GainedBy         string   `json:"gainedBy"`         // the node that gains the network
	ScheduledOn      string   `json:"scheduledOn"`      // where the pod went then
	ScheduledSeconds float64  `json:"scheduledSeconds"` // network file written to pod scheduled
}

// DemoBrokenPod is a pod asking for a network whose plugin chain fails.
type DemoBrokenPod struct {
	Pod          string   `json:"pod"`
	Request      []string `json:"request"`
	Node         string   `json:"node"`
	Phase        string   `json:"phase"`
	Event        string   `json:"event"`        // the FailedCreatePodSandBox event's message
	EventSeconds float64  `json:"eventSeconds"` // created to that event
}

// DemoAccess is the network access policy at work: a Network object opens
// a network to some namespaces; a pod asking for it is refused by the
// apiserver in another namespace and admitted in one of those.
type DemoAccess struct {
	Network    string             `json:"network"`
	Namespaces []string           `json:"namespaces"` // the Network's spec.namespaces
	Pod        string             `json:"pod"`
	Request    string             `json:"request"` // the pod's annotation
	Refused    DemoAccessRefused  `json:"refused"`
	Admitted   DemoAccessAdmitted `json:"admitted"`
}

// DemoAccessRefused is the pod refused at creation.
type DemoAccessRefused struct {
	Namespace string `json:"namespace"`
	Message   string `json:"message"` // the apiserver's error
}

// DemoAccessAdmitted is the same pod admitted in an allowed namespace.
type DemoAccessAdmitted struct {
	Namespace      string          `json:"namespace"`
	Node           string          `json:"node"`
	RunningSeconds float64         `json:"runningSeconds"` // created to Running
	Inside         []DemoInterface `json:"inside"`         // ip -4 -o addr in the pod, without lo
}

// DemoLeases is the deletion of the demo pods and the host-local leases
// per node and network before it and once all were released.
type DemoLeases struct {
	Deleted         []string         `json:"deleted"`
	Counts          []DemoLeaseCount `json:"counts"`
	Before          int              `json:"before"`          // every lease, before
	ReleasedSeconds float64          `json:"releasedSeconds"` // deletion to every lease released
}

// DemoLeaseCount is how many leases a node's network held.
type DemoLeaseCount struct {
	Node    string `json:"node"`
	Network string `json:"network"`
	Before  int    `json:"before"`
	After   int    `json:"after"`
}

// DemoNext is what a user needs to go on with the cluster left up.
type DemoNext struct {
	Kubeconfig   string `json:"kubeconfig"`
	Kubectl      string `json:"kubectl"` // the kubectl binary's path
	ToolboxImage string `json:"toolboxImage"`
	Logs         string `json:"logs"` // the component logs' path, <component> for the name
}

// The sections of the demo's output, in order. The demo prints each as
// soon as its part of the result is complete; RenderDemo prints them all.
type demoSection int

const (
	sectionBringUp demoSection = iota
	sectionPods
	sectionPublished
	sectionStatus
	sectionMulti
	sectionNative
	sectionPending
	sectionBroken
	sectionAccess
	sectionLeases
	sectionSummary
	sectionNext
	numSections
)

// demoSections render each section from the result; a section whose part
// is absent renders nothing.
var demoSections = [numSections]func(io.Writer, *DemoResult){
	sectionBringUp:   renderBringUp,
	sectionPods:      renderPods,
	sectionPublished: renderPublished,
	sectionStatus:    renderStatus,
	sectionMulti:     renderMulti,
	sectionNative:    renderNative,
	sectionPending:   renderPending,
	sectionBroken:    renderBroken,
	sectionAccess:    renderAccess,
	sectionLeases:    renderLeases,
	sectionSummary:   renderSummary,
	sectionNext:      renderNext,
}

// RenderDemo writes the demo's human output for r: exactly what the demo
// printed when it found r.
func RenderDemo(w io.Writer, r *DemoResult) error {
	p := demoPrinter{w: w, r: r}
	return p.through(numSections - 1)
}

// demoPrinter prints the sections of a result in order, each once.
type demoPrinter struct {
	w    io.Writer
	r    *DemoResult
	next demoSection
}

// through prints the sections not printed yet up to and including s.
func (p *demoPrinter) through(s demoSection) error {
	var b bytes.Buffer
	for ; p.next <= s; p.next++ {
		demoSections[p.next](&b, p.r)
	}
	_, err := p.w.Write(b.Bytes())
	return err
}

func renderBringUp(w io.Writer, r *DemoResult) {
	fmt.Fprintf(w, "== Bringing up %d nodes\n", r.BringUp.Nodes)
}

func renderPods(w io.Writer, r *DemoResult) {
	fmt.Fprintf(w, "== One pod per node\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "POD\tNODE\tSUBNET\tPOD IP (status)\tETH0 INSIDE THE POD")
	for _, p := range r.Pods.Pods {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", p.Name, p.Node, p.Subnet, p.StatusIP, p.Eth0IP)
	}
	tw.Flush()
}

func renderPublished(w io.Writer, r *DemoResult) {
	if r.Networks == nil {
		return
	}
	fmt.Fprintf(w, "\n== Networks each node's CRI proxy publishes (node annotation %s)\n", netrequest.AnnotationKey)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tNETWORKS")
	for _, n := range r.Networks.Published {
		v := strings.Join(n.Networks, ",")
		if v == "" {
			v = "(none)"
		}
		fmt.Fprintf(tw, "%s\t%s\n", n.Node, v)
	}
	tw.Flush()
}

func renderStatus(w io.Writer, r *DemoResult) {
	if r.Networks == nil || r.Networks.Status == nil {
		return
	}
	fmt.Fprintf(w, "\n== The same in node.status.networks, published by the patched kubelet (PodNetworks gate on)\n")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tSTATUS.NETWORKS")
	for _, n := range r.Networks.Status {
		v, _ := json.Marshal(n.Networks) // as kubectl prints the field
		fmt.Fprintf(tw, "%s\t%s\n", n.Node, v)
	}
	tw.Flush()
}

func renderMulti(w io.Writer, r *DemoResult) {
	if r.Networks == nil {
		return
	}
	m := r.Networks.Multi
	fmt.Fprintf(w, "\n== Pod %s asks for %q (annotation %s); the scheduler chooses the node\n", m.Pod, strings.Join(m.Request, ","), netrequest.AnnotationKey)
	fmt.Fprintf(w, "scheduled on %s (the node with both networks)\n", m.Node)
	fmt.Fprintln(w, "inside the pod (ip -4 -o addr):")
	for _, i := range m.Inside {
		fmt.Fprintf(w, "  %-5s %s\n", i.Interface, i.Address)
	}
	fmt.Fprintf(w, "annotation %s:\n", netrequest.StatusAnnotationKey)
	for _, s := range m.Status {
		fmt.Fprintf(w, "  %-5s %-8s %s\n", s.Interface, s.Network, strings.Join(s.IPs, ","))
	}
}

func renderNative(w io.Writer, r *DemoResult) {
	if r.Networks == nil || r.Networks.Native == nil {
		return
	}
	n := r.Networks.Native
	fmt.Fprintf(w, "\n== Pod %s asks through spec.networks: %s; the scheduler reads status.networks\n", n.Pod, specNetworks(n.Request))
	fmt.Fprintf(w, "scheduled on %s (the node with both networks)\n", n.Node)
	fmt.Fprintln(w, "inside the pod (ip -4 -o addr):")
	for _, i := range n.Inside {
		fmt.Fprintf(w, "  %-5s %s\n", i.Interface, i.Address)
	}
	if f := n.Refused; f != nil {
		fmt.Fprintf(w, "\n== Pod %s asks for %s and is bound by nodeName to %s, whose runtime cannot attach networks (no CRI proxy)\n",
			f.Pod, specNetworks(f.Request), f.Node)
		fmt.Fprintf(w, "refused by %s's kubelet: %s, %s: %s\n", f.Node, f.Phase, f.Reason, f.Message)
	}
}

// specNetworks renders spec.networks as YAML flow, as a user writes it.
func specNetworks(request []DemoNetworkRequest) string {
	var parts []string
	for _, r := range request {
		if r.InterfaceName == "" {
			parts = append(parts, fmt.Sprintf("{name: %s}", r.Name))
		} else {
			parts = append(parts, fmt.Sprintf("{name: %s, interfaceName: %s}", r.Name, r.InterfaceName))
		}
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func renderPending(w io.Writer, r *DemoResult) {
	if r.Networks == nil {
		return
	}
	p := r.Networks.Pending
	request := strings.Join(p.Request, ",")
	fmt.Fprintf(w, "\n== Pod %s asks for %q, which no node has\n", p.Pod, request)
	fmt.Fprintf(w, "Pending; event FailedScheduling: %s\n", p.Reason)
	fmt.Fprintf(w, "\n== %s gains %q (a conflist appears in its networks dir)\n", p.GainedBy, request)
	fmt.Fprintf(w, "%s scheduled on %s %.2fs after the file appeared (proxy publishes, scheduler requeues)\n", p.Pod, p.ScheduledOn, p.ScheduledSeconds)
}

func renderBroken(w io.Writer, r *DemoResult) {
	if r.Networks == nil || r.Networks.Broken == nil {
		return
	}
	b := r.Networks.Broken
	fmt.Fprintf(w, "\n== Pod %s asks for %q: bridge + host-local, then tuning with a sysctl that does not exist\n", b.Pod, strings.Join(b.Request, ","))
	fmt.Fprintf(w, "not started on %s (%s); event FailedCreatePodSandBox:\n  %s\n", b.Node, b.Phase, b.Event)
	fmt.Fprintf(w, "the proxy rolled the chain back (the address is given back) and kubelet retries with backoff\n")
}

func renderAccess(w io.Writer, r *DemoResult) {
	if r.Networks == nil {
		return
	}
	a := r.Networks.Access
	fmt.Fprintf(w, "\n== Access policy: a Network object opens network %s to namespace(s) %s only (admission/: a ValidatingAdmissionPolicy, no webhook)\n",
		a.Network, strings.Join(a.Namespaces, ", "))
	fmt.Fprintf(w, "pod %s asking for %q in namespace %s: refused by the apiserver:\n  %s\n", a.Pod, a.Request, a.Refused.Namespace, a.Refused.Message)
	fmt.Fprintf(w, "the same pod in namespace %s: admitted, Running on %s; inside (ip -4 -o addr):\n", a.Admitted.Namespace, a.Admitted.Node)
	for _, i := range a.Admitted.Inside {
		fmt.Fprintf(w, "  %-5s %s\n", i.Interface, i.Address)
	}
}

func renderLeases(w io.Writer, r *DemoResult) {
	l := r.Leases
	fmt.Fprintf(w, "\n== Deleting the demo pods gives every address back (host-local leases per node and network)\n")
	fmt.Fprintf(w, "deleted %s\n", strings.Join(l.Deleted, ", "))
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tNETWORK\tLEASES BEFORE\tAFTER")
	for _, c := range l.Counts {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", c.Node, c.Network, c.Before, c.After)
	}
	tw.Flush()
	fmt.Fprintf(w, "every lease released %.1fs after the deletion (%d before, 0 now)\n", l.ReleasedSeconds, l.Before)
}

func renderSummary(w io.Writer, r *DemoResult) {
	fmt.Fprintf(w, "\n== Summary\n")
	b := r.BringUp
	verdict := "within"
	if b.ReadySeconds > b.TargetSeconds {
		verdict = "OVER"
	}
	fmt.Fprintf(w, "  bring-up to %d nodes Ready: %.1fs (%s the %gs target)\n", b.Nodes, b.ReadySeconds, verdict, b.TargetSeconds)
	for _, s := range b.Steps {
		fmt.Fprintf(w, "    %6.2fs  %s\n", s.Seconds, s.Step)
	}
	fmt.Fprintf(w, "  pods created to all Running with addresses checked: %.1fs\n", r.Pods.RunningSeconds)
	if n := r.Networks; n != nil {
		fmt.Fprintf(w, "  pod with %d extra networks created to Running: %.1fs\n", len(n.Multi.Request), n.Multi.RunningSeconds)
		if n.Native != nil {
			fmt.Fprintf(w, "  pod with %d entries in spec.networks created to Running: %.1fs\n", len(n.Native.Request), n.Native.RunningSeconds)
		}
		fmt.Fprintf(w, "  node gains a network to the waiting pod scheduled: %.2fs\n", n.Pending.ScheduledSeconds)
		if n.Broken != nil {
			fmt.Fprintf(w, "  pod with a failing network created to its FailedCreatePodSandBox event: %.1fs\n", n.Broken.EventSeconds)
		}
		fmt.Fprintf(w, "  pod admitted by the access policy created to Running: %.1fs\n", n.Access.Admitted.RunningSeconds)
	}
	fmt.Fprintf(w, "  demo pods deleted to every lease released: %.1fs\n", r.Leases.ReleasedSeconds)
}

func renderNext(w io.Writer, r *DemoResult) {
	n := r.Next
	fmt.Fprintf(w, `
The cluster is still up. Next:
  export KUBECONFIG=%s
  %s get nodes -o wide
  %s run try --image=%s --image-pull-policy=Never --annotations=%s=blue,red -- sleep 3600
  %s exec try -- ip -4 -o addr
  %s get events --field-selector reason=FailedCreatePodSandBox
  logs: %s
  make down
`, n.Kubeconfig, n.Kubectl, n.Kubectl, n.ToolboxImage, netrequest.AnnotationKey, n.Kubectl, n.Kubectl, n.Logs)
}

// writeDemoResult writes r as indented JSON to path, whole or not at all.
func writeDemoResult(path string, r *DemoResult) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// removeDemoResult removes a previous run's result, so that a demo that
// fails leaves none.
func removeDemoResult(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove the previous demo result: %w", err)
	}
	return nil
}
