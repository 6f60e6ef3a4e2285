#!/usr/bin/env bash
# Measures the NodeNetworks plugin's cost to scheduling throughput on the
# local cluster's real apiserver: builds scheduler-plugin/bench/cmd/schedbench
# and runs it, passing its arguments on (-strict: exit non-zero when the
# target is missed). Brings up and tears down its own local cluster.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

[[ $(id -u) -eq 0 ]] || die "the benchmark runs a local cluster, which needs root"
cd "${REPO_ROOT}"
log "building schedbench"
go build -o "${BIN_DIR}/schedbench" ./scheduler-plugin/bench/cmd/schedbench
"${BIN_DIR}/schedbench" -output-dir "${OUTPUT_DIR}" "$@"
