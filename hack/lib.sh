#!/usr/bin/env bash
# Common helpers for hack/ scripts. Source it; it sets strict mode.
set -o errexit -o nounset -o pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUTPUT_DIR=${OUTPUT_DIR:-${REPO_ROOT}/_output}
BIN_DIR=${OUTPUT_DIR}/bin
SRC_DIR=${OUTPUT_DIR}/src
STAMP_DIR=${OUTPUT_DIR}/stamps
# shellcheck source=versions.env
source "${REPO_ROOT}/hack/versions.env"

export GOFLAGS=${GOFLAGS:--buildvcs=false}
GOMODCACHE=$(go env GOMODCACHE)

log() {
  printf '%s [%s] %s\n' "$(date +%H:%M:%S)" "$(basename "$0" .sh)" "$*" >&2
  if [[ -n "${HEARTBEAT_FILE:-}" ]]; then printf '%s|%s\n' "$(date +%s)" "$*" > "${HEARTBEAT_FILE}"; fi
}
die() { log "error: $*"; exit 1; }

# modsrc MODULE VERSION prints the module's directory in the module cache,
# downloading it first when needed.
modsrc() {
  local dir
  dir=$(go mod download -json "$1@$2" | sed -n 's/^\s*"Dir": "\(.*\)",\?$/\1/p')
  [[ -n "${dir}" && -d "${dir}" ]] || die "cannot download $1@$2"
  printf '%s\n' "${dir}"
}

# fresh STAMP KEY... succeeds when the stamp exists, holds the same key and
# every listed output exists; used to keep rebuilds incremental.
fresh() {
  local stamp=${STAMP_DIR}/$1 key=$2; shift 2
  [[ -f "${stamp}" && "$(cat "${stamp}")" == "${key}" ]] || return 1
  local f; for f in "$@"; do [[ -x "${f}" ]] || return 1; done
}
stamp() { mkdir -p "${STAMP_DIR}"; printf '%s' "$2" > "${STAMP_DIR}/$1"; }

# heartbeat makes a long build step (a compile, a copy of the Kubernetes
# tree) that logs nothing for minutes say so: the outermost script that
# calls it repeats the last logged step every minute nothing else is logged.
# Nested scripts share it through HEARTBEAT_FILE.
heartbeat() {
  [[ -z "${HEARTBEAT_FILE:-}" ]] || return 0
  export HEARTBEAT_FILE; HEARTBEAT_FILE=$(mktemp)
  printf '%s|%s\n' "$(date +%s)" "starting" > "${HEARTBEAT_FILE}"
  local parent=$$
  ( trap exit TERM
    while sleep 10 && kill -0 "${parent}" 2>/dev/null; do
      local now since step; now=$(date +%s)
      IFS='|' read -r since step < "${HEARTBEAT_FILE}" || continue
      if (( now - $(stat -c %Y "${HEARTBEAT_FILE}") >= 60 )); then
        printf '%s [%s] still %s (%d min)\n' "$(date +%H:%M:%S)" "$(basename "$0" .sh)" "${step}" $(( (now - since) / 60 )) >&2
        touch "${HEARTBEAT_FILE}"
      fi
    done ) &
  local pid=$!
  trap "kill ${pid} 2>/dev/null || true; rm -f '${HEARTBEAT_FILE}'" EXIT
}

# progress WHAT CMD... logs WHAT and runs CMD (the heartbeat covers it).
progress() { log "$1"; shift; "$@"; }
