// Package kindconfig holds no code: it is the home of the tests of the kind
// cluster configuration in this directory, which run where Docker does not.
//
// Without a build tag they check the configuration itself: cluster.yaml
// decodes strictly with kind's own v1alpha4 types; kind's kubeadm config
// template (read from the pinned kind module), patched as kind patches it,
// loads and validates with kubeadm's own code, and kubeadm's own static pod
// generator and patch machinery make the control plane run the patched
// binaries with the PodNetworks gate; kubelet's configuration, as kubeadm
// writes it, points at the CRI proxy's socket; the scheduler configuration
// loads as kube-scheduler loads it; the systemd units start the proxy before
// kubelet; each worker's networks are accepted by the proxy's own catalog
// beside kindnet's network; the proxy's credential, issued as
// kind-config/up.sh issues it, is the one the admission policy expects.
//
// With the tag kindcontext (hack/test.sh kind, after
// hack/kind-image-context.sh) they check the staged docker build context:
// every COPY source exists, every file the node's configuration names is put
// in the image, binaries are static executables of this architecture and the
// patched builds, and systemd-analyze verifies the units where it is
// installed.
package kindconfig
