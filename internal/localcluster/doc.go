// Package localcluster brings up and tears down a real multi-node Kubernetes
// cluster on one machine, from binaries built by hack/ at the pinned versions.
//
// A cluster is one control plane (etcd, kube-apiserver with real certificates,
// kube-controller-manager, kube-scheduler) and N nodes, each with its own
// containerd, CRI proxy, kubelet, CNI directories, bridge, subnet, cgroup root
// and ports. Everything the cluster writes lives under Options.StateDir,
// except unix sockets, which live under Options.RunDir because socket paths
// are limited to 108 bytes and containerd's shim socket directory to 42.
//
// The code is split by what changes together:
//
//   - options.go: Options, the configuration, validated once and never
//     changed.
//   - layout.go: the layout derived from it, where every file, socket and
//     port of the control plane and of each Node is.
//   - components.go: the daemons in start order, with their readiness
//     checks; controlplane.go and node.go say how each is started, and
//     configs.go writes the files they read (typed kubelet and scheduler
//     configurations).
//   - runner.go: the runner, the one place that starts, stops and kills
//     processes, tracked by pid files that outlive the command.
//   - up.go and down.go: bring-up and teardown; host.go and hoststate.go:
//     what the cluster changes on the host, and a Snapshot of it.
//
// Down undoes everything Up changed on the host: processes, mounts, network
// namespaces, links, cgroups, iptables chains and sysctls. Snapshot captures
// that host state so tests can prove it.
//
// Fault tests break a running cluster on purpose (faults.go): KillProxy and
// StartProxy crash and restart a node's CRI proxy, RestartContainerd
// restarts its containerd under running pods, and NodeState (nodestate.go)
// lists what a node's pods hold on the host (leases, links, network
// namespaces, proxy records) to show that nothing leaked.
package localcluster
