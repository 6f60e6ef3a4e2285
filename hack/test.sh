#!/usr/bin/env bash
# Runs the tests: `unit` (no root, no cluster; race detector on), `staging`
# (the upstream and our tests of the patched staging modules in _output/src/staging),
# `kube-patched` (those of the packages kubelet-patch/ touches, in the
# patched tree; both need make build first), `kind` (stages the kind node
# image's build context and checks it; no Docker), `integration` (root; real CNI
# plugins in throwaway network namespaces), `e2e` (root; brings real clusters
# up and down), or all of them when no argument is given.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
heartbeat

cd "${REPO_ROOT}"
what=${1:-all}
if [[ "${what}" == all || "${what}" == unit ]]; then
  log "go vet and unit tests (race detector on)"
  go vet ./...
  progress "running the unit tests" go test -race -count=1 ./...
fi
if [[ "${what}" == all || "${what}" == staging ]]; then
  log "tests of the patched staging modules"
  # The packages the patches touch, and the module's compatibility tests.
  declare -A pkgs=([cri-api]=./... [api]="./core/v1/ .")
  for m in cri-api api; do
    [[ -d "${SRC_DIR}/staging/${m}" ]] || die "${SRC_DIR}/staging/${m} is missing: run make build"
    (cd "${SRC_DIR}/staging/${m}" && GOWORK=off GOFLAGS=-mod=mod go test -count=1 ${pkgs[${m}]})  # word-split on purpose
  done
  # The same generators, run over the stock k8s.io/api, must give it back
  # byte for byte: the patched module's generated code is upstream's.
  "${REPO_ROOT}/hack/build-staging.sh" check-generators
fi
if [[ "${what}" == all || "${what}" == kube-patched ]]; then
  log "tests of the patched Kubernetes: every package kubelet-patch/ touches, upstream's and ours"
  # The binaries' flags (no cgo, -trimpath): the tests reuse the packages the
  # build compiled.
  (cd "${SRC_DIR}/kubernetes-patched" && GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 go test -trimpath -count=1 \
    ./pkg/features/ ./pkg/apis/core/... ./pkg/api/pod/... ./pkg/api/testing/ ./pkg/registry/core/node/ \
    ./pkg/kubelet/ ./pkg/kubelet/container/ ./pkg/kubelet/kuberuntime/ ./pkg/kubelet/nodestatus/ \
    ./pkg/scheduler/framework/ ./pkg/scheduler/backend/queue/ k8s.io/kube-scheduler/... ./pkg/generated/openapi/... \
    k8s.io/client-go/applyconfigurations/... \
    ./pkg/scheduler/apis/config/... ./pkg/scheduler/framework/plugins/ ./pkg/scheduler/framework/plugins/nodenetworks/ \
    ./cmd/kube-scheduler/app/... ./pkg/kubelet/lifecycle/ ./test/declarative_validation/core/... \
    k8s.io/component-helpers/nodedeclaredfeatures/...)
  # The NodeNetworks plugin's native build (pod-networks-scheduler: -tags podnetworks_native), with
  # its own tests, copied from scheduler-plugin/ by hack/build-kube-patched.sh.
  (cd "${SRC_DIR}/kubernetes-patched" && GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 go test -trimpath -count=1 -tags podnetworks_native \
    ./pkg/scheduler/framework/plugins/ ./pkg/scheduler/framework/plugins/nodenetworks/ ./cmd/kube-scheduler/app/)
fi
if [[ "${what}" == all || "${what}" == kind ]]; then
  log "kind-config: the node image's build context (Docker is not used: nothing is built or booted)"
  "${REPO_ROOT}/hack/kind-image-context.sh"
  go vet -tags kindcontext ./kind-config/
  # -v: a check that cannot run here (systemd-analyze missing) shows as SKIP.
  KIND_IMAGE_CONTEXT="${OUTPUT_DIR}/kind/image" go test -tags kindcontext -count=1 -v -run '^TestContext' ./kind-config/
fi
if [[ "${what}" == all || "${what}" == integration ]]; then
  [[ $(id -u) -eq 0 ]] || die "integration tests need root"
  log "integration tests (real CNI plugins in network namespaces)"
  go vet -tags integration ./...
  CNI_BIN_DIR="${BIN_DIR}/cni" go test -tags integration -count=1 ./cri-proxy/...
fi
if [[ "${what}" == all || "${what}" == e2e ]]; then
  [[ $(id -u) -eq 0 ]] || die "e2e tests need root"
  log "e2e tests (real clusters: etcd, apiserver, kubelets, containerd, runc, CNI)"
  go vet -tags e2e ./test/...
  OUTPUT_DIR="${OUTPUT_DIR}" go test -tags e2e -count=1 -timeout 40m -v ./test/e2e/...
fi
