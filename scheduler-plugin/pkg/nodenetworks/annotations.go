//go:build !podnetworks_intree

package nodenetworks

import (
	"context"
	"fmt"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// The annotations, for the builds that read them: source.go (stock API)
// and source_native.go (patched API, pods and nodes that do not use the
// native fields). The in-tree plugin reads the native fields only.

// source is the plugin's configuration: its args name the annotations.
type source struct {
	args Args
}

// New is the plugin's factory (runtime.PluginFactory). It keeps the
// interned networks of every node fresh from the scheduler's node informer.
func New(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, err := decodeArgs(obj)
	if err != nil {
		return nil, err
	}
	p := newPlugin(source{args: args}, args.AlwaysAvailable, netrequest.ParseNodeNetworks)
	if err := p.watchNodes(h); err != nil {
		return nil, err
	}
	klog.FromContext(ctx).V(2).Info("plugin ready", "plugin", Name, "podAnnotation", args.PodAnnotation,
		"nodeAnnotation", args.NodeAnnotation, "alwaysAvailable", args.AlwaysAvailable)
	return p, nil
}

// annotationRequest parses the pod's annotation (netrequest's syntax and
// rules).
func (p *Plugin) annotationRequest(pod *v1.Pod) (request, error) {
	reqs, err := netrequest.Parse(pod.Annotations[p.args.PodAnnotation])
	if err != nil {
		return request{kind: annotationPod}, netrequest.BoundError(fmt.Errorf("invalid network request (annotation %s): %w", p.args.PodAnnotation, err))
	}
	names := make([]string, len(reqs))
	for i, r := range reqs {
		names[i] = r.Name
	}
	return request{kind: annotationPod, names: names}, nil
}

// annotationNetworks returns the networks of the node's annotation, a
// value that does not parse being none.
func (p *Plugin) annotationNetworks(n *v1.Node) bitset {
	return p.sets.value(n.Annotations[p.args.NodeAnnotation])
}

// where names one source of node networks in rejection reasons.
func (p *Plugin) where(f from) string {
	if f == fromStatus {
		return "status.networks"
	}
	return "annotation " + p.args.NodeAnnotation
}
