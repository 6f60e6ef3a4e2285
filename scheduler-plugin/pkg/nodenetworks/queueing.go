package nodenetworks

import (
	"context"
	"slices"

	v1 "k8s.io/api/core/v1"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"
)

// EventsToRegister requeues a rejected pod when a node is added or its
// annotations change and it now has every network the pod needs, and when
// the pod's own request changes.
func (p *Plugin) EventsToRegister(context.Context) ([]fwk.ClusterEventWithHint, error) {
	return []fwk.ClusterEventWithHint{
		{Event: fwk.ClusterEvent{Resource: fwk.Node, ActionType: fwk.Add | fwk.UpdateNodeAnnotation | nodeNetworksUpdate}, QueueingHintFn: p.isSchedulableAfterNodeChange},
		{Event: fwk.ClusterEvent{Resource: fwk.TargetPod, ActionType: fwk.Update}, QueueingHintFn: p.isSchedulableAfterPodChange},
	}, nil
}

// isSchedulableAfterNodeChange queues the pod only when the node newly has
// every network the pod needs.
func (p *Plugin) isSchedulableAfterNodeChange(logger klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	newNode, ok := newObj.(*v1.Node)
	if !ok {
		return fwk.Queue, nil // unexpected: let the pod retry
	}
	// Record it first: the informer handler that would may not have run
	// yet, and the pod this hint requeues must see the node in PreFilter.
	p.sawNode(newNode)
	oldNode, _ := oldObj.(*v1.Node)
	names, err := p.required(pod)
	if err != nil || len(names) == 0 {
		// Not this plugin's rejection to lift (a malformed request waits
		// for a pod update).
		return fwk.QueueSkip, nil
	}
	if !p.fits(names, p.sets.get(p.nodeNetworks(newNode))) {
		logger.V(5).Info("node still lacks networks the pod needs", "pod", klog.KObj(pod), "node", klog.KObj(newNode))
		return fwk.QueueSkip, nil
	}
	if oldNode != nil && p.fits(names, p.sets.get(p.nodeNetworks(oldNode))) {
		return fwk.QueueSkip, nil // it had them already: the change is not ours
	}
	logger.V(4).Info("node now has the networks the pod needs", "pod", klog.KObj(pod), "node", klog.KObj(newNode))
	return fwk.Queue, nil
}

// isSchedulableAfterPodChange queues the pod when its request changed.
func (p *Plugin) isSchedulableAfterPodChange(logger klog.Logger, pod *v1.Pod, oldObj, newObj any) (fwk.QueueingHint, error) {
	oldPod, okOld := oldObj.(*v1.Pod)
	newPod, okNew := newObj.(*v1.Pod)
	if !okOld || !okNew {
		return fwk.Queue, nil
	}
	if p.podRequest(oldPod) == p.podRequest(newPod) {
		return fwk.QueueSkip, nil
	}
	oldNames, oldErr := p.required(oldPod)
	newNames, newErr := p.required(newPod)
	if (oldErr == nil) == (newErr == nil) && slices.Equal(oldNames, newNames) {
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
