// Package nodenetworks is a kube-scheduler framework plugin that places a pod
// only on nodes that have every network it asks for.
//
// One source, three builds, each with its own source file:
//
//   - source.go, the stock API (this repository's pod-networks-scheduler):
//     a pod asks with the annotation networking.x-k8s.io/networks (parsed by
//     package netrequest, shared with the CRI proxy); a node's networks are
//     the node annotation of the same key, which the CRI proxy publishes.
//     Both keys are plugin args.
//   - source_native.go (build tag podnetworks_native), the patched API with
//     the annotations kept: a pod with spec.networks is matched against
//     nodes' status.networks only; a pod asking with the annotation against
//     a node's status.networks when it reports any, else its annotation.
//   - source_intree.go (build tag podnetworks_intree), the in-tree plugin of
//     the patched Kubernetes: spec.networks against status.networks, no
//     args. hack/build-kube-patched.sh copies the package into
//     pkg/scheduler/framework/plugins/nodenetworks, where kube-scheduler
//     compiles it without tags and pod-networks-scheduler with
//     podnetworks_native.
//
// A rejection names the source it read: "node(s) didn't have the requested
// network(s) in status.networks: red", or "... in annotation
// networking.x-k8s.io/networks: red".
//
// PreFilter reads the pod once. Filter allocates nothing on a node that
// fits: each distinct node value (an annotation value or a status.networks
// list) is interned once, when the node informer sees it, into a bitset over
// interned network names, and Filter compares bitsets. Pods rejected for a
// missing network are requeued by node events whose queueing hint checks
// that the node now has them.
package nodenetworks
