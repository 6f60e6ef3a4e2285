//go:build podnetworks_native

package nodenetworks

import (
	"strings"

	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
)

// Built against the patched API: the native fields win, the annotations
// remain for pods and nodes that do not use them (version skew).

// nodeNetworksUpdate is the event the patched scheduler emits when a node's
// status.networks changes.
const nodeNetworksUpdate = fwk.UpdateNodeNetworks

// podRequest returns spec.networks in netrequest's text form
// (name[@interface],...), or the annotation when the field is empty.
func (p *Plugin) podRequest(pod *v1.Pod) string {
	if len(pod.Spec.Networks) == 0 {
		return pod.Annotations[p.args.PodAnnotation]
	}
	var b strings.Builder
	for i, n := range pod.Spec.Networks {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(n.Name)
		if n.InterfaceName != "" {
			b.WriteByte('@')
			b.WriteString(n.InterfaceName)
		}
	}
	return b.String()
}

// nodeNetworks returns status.networks joined by commas, or the annotation
// when the node reports none. (Joining allocates: with the native field,
// PreFilter's node list, not Filter, does most of the work.)
func (p *Plugin) nodeNetworks(node *v1.Node) string {
	if len(node.Status.Networks) == 0 {
		return node.Annotations[p.args.NodeAnnotation]
	}
	return strings.Join(node.Status.Networks, ",")
}
