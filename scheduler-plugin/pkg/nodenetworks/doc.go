// Package nodenetworks is a kube-scheduler framework plugin that places a pod
// only on nodes that have every network it asks for.
//
// A pod asks with the annotation networking.x-k8s.io/networks (parsed by
// package netrequest, shared with the CRI proxy); a node's networks are the
// node annotation of the same key, which the CRI proxy publishes. Both keys
// are plugin args; the native API fields (PodSpec.networks,
// NodeStatus.networks) come in through source.go once the patched API is in
// use.
//
// PreFilter parses the pod once. Filter allocates nothing on a node that
// fits: each distinct node value is parsed once, when the node informer sees
// it, into a bitset over interned network names, and Filter compares
// bitsets. Pods rejected for a missing network are requeued by node events
// whose queueing hint checks that the node now has them.
package nodenetworks
