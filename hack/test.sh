#!/usr/bin/env bash
# Runs the tests: `unit` (no root, no cluster), `e2e` (root; brings real
# clusters up and down), or both when no argument is given.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "${REPO_ROOT}"
what=${1:-all}
if [[ "${what}" == all || "${what}" == unit ]]; then
  log "go vet and unit tests"
  go vet ./...
  go test -count=1 ./...
fi
if [[ "${what}" == all || "${what}" == e2e ]]; then
  [[ $(id -u) -eq 0 ]] || die "e2e tests need root"
  log "e2e tests (real clusters: etcd, apiserver, kubelets, containerd, runc, CNI)"
  go vet -tags e2e ./test/...
  OUTPUT_DIR="${OUTPUT_DIR}" go test -tags e2e -count=1 -timeout 40m -v ./test/e2e/...
fi
