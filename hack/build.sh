#!/usr/bin/env bash
# Builds what `make demo` runs (`hack/build.sh demo`) or what `make test`
# needs (no argument), skipping what is fresh. The demo runs the patched
# Kubernetes only; the tests also run the stock kube-apiserver,
# kube-controller-manager, kubelet and kube-scheduler (Kubernetes without the
# native API, annotations only, and version skew), the stock
# pod-networks-scheduler and the patched kube-scheduler.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
heartbeat

set_=${1:-test}
[[ "${set_}" == demo || "${set_}" == test ]] || die "usage: build.sh [demo|test]"
patched=(kube-apiserver kube-controller-manager kubelet kubectl pod-networks-scheduler)
stock=()
if [[ "${set_}" == test ]]; then
  patched+=(kube-scheduler)
  stock=(kube-apiserver kube-controller-manager kubelet kube-scheduler)
fi

"${REPO_ROOT}/hack/install-deps.sh"
staging_args=(); [[ "${set_}" == test ]] && staging_args=(fixtures)
"${REPO_ROOT}/hack/build-staging.sh" "${staging_args[@]}"
"${REPO_ROOT}/hack/build-kube.sh" "${stock[@]}"
"${REPO_ROOT}/hack/build-kube-patched.sh" "${patched[@]}"
for part in etcd containerd cni-plugins images; do
  "${REPO_ROOT}/hack/build-${part}.sh"
done
[[ "${set_}" == test ]] && "${REPO_ROOT}/hack/build-scheduler.sh"
cd "${REPO_ROOT}"
progress "building localcluster and cri-proxy" go build -o "${BIN_DIR}/" ./hack/localcluster ./cri-proxy/cmd/cri-proxy
