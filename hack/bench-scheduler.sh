#!/usr/bin/env bash
# Measures what placing pods by network costs the scheduler and the API, with
# NodeNetworks, a nodeSelector and DRA side by side: builds
# scheduler-plugin/bench/cmd/schedbench and runs it, passing its arguments on
# (-rounds N, -arms ..., -strict: exit non-zero when the target is missed). It
# starts its own etcd and kube-apiserver on free loopback ports (no root, no
# local cluster) and runs the binaries of make build: _output/bin/etcd,
# _output/bin/patched/kube-apiserver and kube-scheduler (the in-tree
# NodeNetworks plugin, PodNetworks=true), and the stock _output/bin/kube-scheduler
# and kube-controller-manager (its resourceclaim controller, for DRA).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "${REPO_ROOT}"
for b in etcd patched/kube-apiserver patched/kube-scheduler kube-scheduler kube-controller-manager; do
  [[ -x "${BIN_DIR}/${b}" ]] || die "${BIN_DIR}/${b} is missing: run make build"
done
log "building schedbench"
go build -o "${BIN_DIR}/schedbench" ./scheduler-plugin/bench/cmd/schedbench
"${BIN_DIR}/schedbench" -output-dir "${OUTPUT_DIR}" "$@"
