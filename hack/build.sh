#!/usr/bin/env bash
# Builds everything `make demo` and `make test` need, skipping what is fresh.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

"${REPO_ROOT}/hack/install-deps.sh"
for part in staging kube kube-patched etcd containerd cni-plugins images scheduler; do
  "${REPO_ROOT}/hack/build-${part}.sh"
done
cd "${REPO_ROOT}"
go build -o "${BIN_DIR}/" ./hack/localcluster ./cri-proxy/cmd/cri-proxy
