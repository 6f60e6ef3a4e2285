//go:build podnetworks_intree

package nodenetworks

import (
	"context"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	fwk "k8s.io/kube-scheduler/framework"
)

// The in-tree plugin of the patched Kubernetes (registered in
// pkg/scheduler/framework/plugins, in the default profile when the
// PodNetworks gate is on): pods ask in spec.networks, nodes list their
// networks in status.networks, nothing else is read. It has no args.

// source is the plugin's configuration: none.
type source struct{}

// nodeEvents are the node events that may give a node a network.
const nodeEvents = fwk.Add | fwk.UpdateNodeNetworks

// podRequestMutable: spec.networks cannot change.
const podRequestMutable = false

// New is the plugin's factory. The plugin has no args: obj is ignored, as
// by the other in-tree plugins without args.
func New(ctx context.Context, _ runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	p := newPlugin(source{}, nil, nil)
	if err := p.watchNodes(h); err != nil {
		return nil, err
	}
	return p, nil
}

// podRequest returns spec.networks; a pod without them asks for nothing.
func (p *Plugin) podRequest(pod *v1.Pod) (request, error) {
	return nativeRequest(pod), nil
}

// nodeNetworks returns the node's status.networks.
func (p *Plugin) nodeNetworks(n *v1.Node, _ podKind) (bitset, from) {
	return p.statusNetworks(n), fromStatus
}

// nodeValues returns the node's status.networks.
func (p *Plugin) nodeValues(n *v1.Node) nodeValues {
	return nodeValues{status: n.Status.Networks}
}

// where names the source of node networks in rejection reasons.
func (p *Plugin) where(from) string { return "status.networks" }
