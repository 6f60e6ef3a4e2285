// Package e2e holds end-to-end tests that bring real local clusters up and
// down (etcd, kube-apiserver, controller-manager, scheduler, kubelets,
// containerd, runc, CNI plugins, network namespaces). They need root and the
// binaries `make build` produces, and run with `go test -tags e2e` (`make e2e`).
package e2e
