// Package admission holds the cluster-level half of the project's access
// control, as manifests a cluster administrator applies (kubectl apply -f
// admission/) and that the local cluster installs:
//
//   - network-crd.yaml: the Network CRD (networking.x-k8s.io/v1alpha1),
//     one object per restricted network;
//   - network-access-policy.yaml: a ValidatingAdmissionPolicy that enforces
//     those objects on pods (namespaces, static ips and mac);
//   - cri-proxy-policy.yaml: the CRI proxies' RBAC and a
//     ValidatingAdmissionPolicy that ties each proxy's credential to its
//     own Node and the pods bound to it.
//
// Everything is built-in admission machinery (CEL): there is no webhook
// server to run. See README.md for the rules and their limits.
package admission
