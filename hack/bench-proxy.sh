#!/usr/bin/env bash
# Measures what the CRI proxy adds to kubelet's most frequent calls: builds
# cri-proxy/bench/cmd/cribench and runs it (fake runtime, proxy and client
# as separate processes), passing its arguments on: with -strict it exits
# non-zero when a target is missed.
set -o errexit -o nounset -o pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cd "${REPO_ROOT}"
log "building cribench"
go build -o "${BIN_DIR}/cribench" ./cri-proxy/bench/cmd/cribench
"${BIN_DIR}/cribench" -cni-bin-dir "${BIN_DIR}/cni" "$@"
