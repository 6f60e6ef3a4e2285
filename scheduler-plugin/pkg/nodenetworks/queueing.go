package nodenetworks

import (
	"context"
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

// EventsToRegister requeues a rejected pod when a node is added or one of
// the node sources the build reads changes (nodeEvents) and the node now
// has every network the pod needs, and, when requests can change
// (podRequestMutable), when the pod's own request changes.
func (p *Plugin) EventsToRegister(context.Context) ([]fwk.ClusterEventWithHint, error) {
	events := []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: nodeEvents}, QueueingHintFn: p.isSchedulableAfterNodeChange},
	}
	if podRequestMutable {
		events = append(events, fwk.ClusterEventWithHint{
			Event: fwk.ClusterEvent{Resource: fwk.TargetPod, ActionType: fwk.Update}, QueueingHintFn: p.isSchedulableAfterPodChange})
	}
	return events, nil
}

// isSchedulableAfterNodeChange queues the pod only when the node newly has
// every network the pod needs, in the source the pod reads on that node.
func (p *Plugin) isSchedulableAfterNodeChange(logger klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	newNode, ok := newObj.(*v1.Node)
	if !ok {
		return fwk.Queue, nil // unexpected: let the pod retry
	}
	// Record it first: the informer handler that would may not have run
	// yet, and the pod this hint requeues must see the node in PreFilter.
	p.sawNode(newNode)
	oldNode, _ := oldObj.(*v1.Node)
	kind, names, err := p.required(pod)
	if err != nil || len(names) == 0 {
		// Not this plugin's rejection to lift (a malformed request waits
		// for a pod update).
		return fwk.QueueSkip, nil
	}
	if have, _ := p.nodeNetworks(newNode, kind); !p.fits(names, have) {
		logger.V(5).Info("node still lacks networks the pod needs", "pod", klog.KObj(pod), "node", klog.KObj(newNode))
		return fwk.QueueSkip, nil
	}
	if oldNode != nil {
		if had, _ := p.nodeNetworks(oldNode, kind); p.fits(names, had) {
			return fwk.QueueSkip, nil // it had them already: the change is not ours
		}
	}
	logger.V(4).Info("node now has the networks the pod needs", "pod", klog.KObj(pod), "node", klog.KObj(newNode))
	return fwk.Queue, nil
}

// isSchedulableAfterPodChange queues the pod when what it needs from nodes
// changed.
func (p *Plugin) isSchedulableAfterPodChange(logger klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	oldPod, okOld := oldObj.(*v1.Pod)
	newPod, okNew := newObj.(*v1.Pod)
	if !okOld || !okNew {
		return fwk.Queue, nil
	}
	oldKind, oldNames, oldErr := p.required(oldPod)
	newKind, newNames, newErr := p.required(newPod)
	if (oldErr == nil) == (newErr == nil) && slices.Equal(oldNames, newNames) && (len(newNames) == 0 || oldKind == newKind) {
		return fwk.QueueSkip, nil
	}
	logger.V(4).Info("pod's network request changed", "pod", klog.KObj(newPod))
	return fwk.Queue, nil
}

// fits reports whether a node with have has every one of names.
func (p *Plugin) fits(names []string, have bitset) bool {
	want, unknown := p.sets.bits(names)
	return len(unknown) == 0 && have.has(want)
}
