//go:build podnetworks_native || podnetworks_intree

package nodenetworks

import (
	v1 "k8s.io/api/core/v1"
)

// The native fields, for the builds against the patched API
// (source_native.go, source_intree.go).

// nativeRequest returns the networks of spec.networks, read field by field:
// kube-apiserver has validated them (names DNS-1123 labels, unique).
func nativeRequest(pod *v1.Pod) request {
	names := make([]string, len(pod.Spec.Networks))
	for i := range pod.Spec.Networks {
		names[i] = pod.Spec.Networks[i].Name
	}
	return request{kind: nativePod, names: names}
}

// statusNetworks returns the networks of the node's status.networks.
func (p *Plugin) statusNetworks(n *v1.Node) bitset {
	return p.sets.list(n.Status.Networks)
}
