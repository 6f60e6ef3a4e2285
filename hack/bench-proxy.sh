#!/usr/bin/env bash
# Measures what cri-proxy, as deployed, costs kubelet (see the doc of
# cri-proxy/bench/cmd/cribench): builds the real cri-proxy binary into
# _output/bin and the benchmark's own programs (cribench, the grpc-go
# pass-through anchor, the x/net/http2 candidate relay) into _output/bench,
# not _output/bin, whose processes the local cluster's teardown kills; then
# runs cribench as root with the CNI plugins of _output/bin/cni, passing its
# arguments on (-strict: exit non-zero when a target is missed;
# -candidates=false: skip the candidate).
set -o errexit -o nounset -o pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "${REPO_ROOT}"
[[ ${EUID} -eq 0 ]] || die "run as root: the benchmark creates links and network namespaces"
bench_dir=${OUTPUT_DIR}/bench
log "building cri-proxy, cribench, grpcpassthrough, h2relay"
go build -o "${BIN_DIR}/" ./cri-proxy/cmd/cri-proxy
go build -o "${bench_dir}/" ./cri-proxy/bench/cmd/cribench ./cri-proxy/bench/cmd/grpcpassthrough ./cri-proxy/bench/cmd/h2relay
log "running cribench (about two minutes)"
"${bench_dir}/cribench" -cri-proxy "${BIN_DIR}/cri-proxy" -cni-bin-dir "${BIN_DIR}/cni" "$@"
