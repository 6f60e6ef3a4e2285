#!/usr/bin/env bash
# Builds the kube-scheduler with the NodeNetworks plugin compiled in
# (scheduler-plugin/cmd/kube-scheduler) as _output/bin/pod-networks-scheduler,
# with the same version ldflags as the upstream build. It is compiled with
# the module's default flags (no -trimpath, cgo as the machine has it), like
# `go vet` and the other binaries of this module, so that the scheduler's
# many packages compile once for all of them. Go's build cache makes a
# rebuild with nothing changed take seconds.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
heartbeat

minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  ldflags+=" -X ${pkg}.gitVersion=${KUBE_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor} -X ${pkg}.gitTreeState=clean"
done
cd "${REPO_ROOT}"
progress "building pod-networks-scheduler" go build -ldflags "${ldflags}" -o "${BIN_DIR}/pod-networks-scheduler" ./scheduler-plugin/cmd/kube-scheduler
