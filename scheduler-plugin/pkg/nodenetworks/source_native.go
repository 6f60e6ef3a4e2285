//go:build podnetworks_native

package nodenetworks

import (
	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
)

// Built against the patched API for clusters where pods and nodes may use
// either the native fields or the annotations (version skew, the gate off):
//
//   - a pod with spec.networks is matched against nodes' status.networks
//     only;
//   - a pod asking with the annotation is matched against a node's
//     status.networks when the node reports any, else against the node
//     annotation.

// nodeEvents are the node events that may give a node a network: the
// patched scheduler emits UpdateNodeNetworks when status.networks changes.
const nodeEvents = fwk.Add | fwk.UpdateNodeAnnotation | fwk.UpdateNodeNetworks

// podRequestMutable: spec.networks cannot change, annotations can.
const podRequestMutable = true

// podRequest returns spec.networks when the pod has any, else its
// annotation request.
func (p *Plugin) podRequest(pod *v1.Pod) (request, error) {
	if len(pod.Spec.Networks) > 0 {
		return nativeRequest(pod), nil
	}
	return p.annotationRequest(pod)
}

// nodeNetworks returns the node's networks for a pod of kind, and where
// they were read.
func (p *Plugin) nodeNetworks(n *v1.Node, kind podKind) (bitset, from) {
	if kind == nativePod || len(n.Status.Networks) > 0 {
		return p.statusNetworks(n), fromStatus
	}
	return p.annotationNetworks(n), fromAnnotation
}

// nodeValues returns the node's status.networks and annotation.
func (p *Plugin) nodeValues(n *v1.Node) nodeValues {
	return nodeValues{status: n.Status.Networks, annotation: n.Annotations[p.args.NodeAnnotation]}
}
