package nodenetworks

import v1 "k8s.io/api/core/v1"

// This file is the one place that knows where a pod's request and a node's
// networks are read from. With the stock API they travel in annotations;
// the native API (PodSpec.networks, NodeStatus.networks) replaces these two
// functions, and nothing else, when the patched modules are in use.

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
