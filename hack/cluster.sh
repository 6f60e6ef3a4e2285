#!/usr/bin/env bash
# Runs the local-cluster tool: up, down or demo. NODES sets the node count.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

cmd=$1; shift
[[ $(id -u) -eq 0 ]] || die "the local cluster needs root (cgroups, mounts, network namespaces)"
if [[ ! -x "${BIN_DIR}/localcluster" ]]; then
  [[ "${cmd}" == down ]] && exit 0  # nothing was ever built, so nothing runs
  die "${BIN_DIR}/localcluster is missing: run make build"
fi
args=(-output-dir "${OUTPUT_DIR}")
# NODES overrides the node count (the demo's default is 3: see localcluster -h).
[[ "${cmd}" != down && -n "${NODES:-}" ]] && args+=(-nodes "${NODES}")
exec "${BIN_DIR}/localcluster" "${cmd}" "${args[@]}" "$@"
