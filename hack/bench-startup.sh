#!/usr/bin/env bash
# Measures what the networks a pod asks for add to its start-up latency (see
# the doc of test/bench/cmd/startupbench): builds startupbench into
# _output/bench, then runs it as root, passing its arguments on (-rounds N,
# -pods N, -arms 0,1,4,16, ...). It brings up its own one-node local cluster
# from the binaries of make build, so none may be running, and tears it down
# at the end, also on failure or SIGINT, checking the host is as it was.
set -o errexit -o nounset -o pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "${REPO_ROOT}"
[[ ${EUID} -eq 0 ]] || die "run as root: the benchmark brings up a local cluster"
for b in etcd containerd containerd-shim-runc-v2 cri-proxy cni/bridge cni/host-local \
  patched/kube-apiserver patched/kube-controller-manager patched/kube-scheduler patched/kubelet patched/kubectl; do
  [[ -x "${BIN_DIR}/${b}" ]] || die "${BIN_DIR}/${b} is missing: run make build"
done
for i in pause toolbox; do
  [[ -f "${OUTPUT_DIR}/images/${i}.tar" ]] || die "${OUTPUT_DIR}/images/${i}.tar is missing: run make build"
done
bench_dir=${OUTPUT_DIR}/bench
log "building startupbench"
go build -o "${bench_dir}/" ./test/bench/cmd/startupbench
log "running startupbench (about 5 minutes with the defaults)"
"${bench_dir}/startupbench" -output-dir "${OUTPUT_DIR}" "$@"
