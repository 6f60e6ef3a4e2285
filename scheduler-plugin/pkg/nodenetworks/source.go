//go:build !podnetworks_native

package nodenetworks

import (
	v1 "k8s.io/api/core/v1"
	fwk "k8s.io/kube-scheduler/framework"
)

// This file and source_native.go are the one place that knows where a
// pod's request and a node's networks are read from. With the stock API
// they travel in annotations; built against the patched API (build tag
// podnetworks_native, see hack/build-kube-patched.sh), source_native.go
// reads the native fields and falls back to the annotations.

// nodeNetworksUpdate is the node update event that changes a node's
// networks besides annotations: none with the stock API.
const nodeNetworksUpdate fwk.ActionType = 0

// podRequest returns the pod's network request as the text netrequest
// parses.
func (p *Plugin) podRequest(pod *v1.Pod) string {
	return pod.Annotations[p.args.PodAnnotation]
}

// nodeNetworks returns the node's networks as the text
// netrequest.ParseNodeNetworks parses.
func (p *Plugin) nodeNetworks(node *v1.Node) string {
	return node.Annotations[p.args.NodeAnnotation]
}
