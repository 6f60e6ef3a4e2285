//go:build !podnetworks_native && !podnetworks_intree

package nodenetworks

import (
	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
)

// The stock API: pods ask with the annotation, nodes list their networks in
// the annotation (annotations.go). source_native.go and source_intree.go
// are the builds against the patched API.

// nodeEvents are the node events that may give a node a network.
const nodeEvents = fwk.Add | fwk.UpdateNodeAnnotation

// podRequestMutable: annotations can change.
const podRequestMutable = true

// podRequest returns the pod's annotation request.
func (p *Plugin) podRequest(pod *v1.Pod) (request, error) {
	return p.annotationRequest(pod)
}

// nodeNetworks returns the networks of the node's annotation.
func (p *Plugin) nodeNetworks(n *v1.Node, _ podKind) (bitset, from) {
	return p.annotationNetworks(n), fromAnnotation
}

// nodeValues returns the node's annotation.
func (p *Plugin) nodeValues(n *v1.Node) nodeValues {
	return nodeValues{annotation: n.Annotations[p.args.NodeAnnotation]}
}
