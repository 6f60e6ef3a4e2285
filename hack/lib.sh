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

log() { printf '%s [%s] %s\n' "$(date +%H:%M:%S)" "$(basename "$0" .sh)" "$*" >&2; }
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

# progress WHAT CMD... runs the command CMD (not a shell function: errexit
# does not apply inside one run this way), logging "still WHAT" every minute
# while it runs, so that a long, silent build never looks hung.
progress() {
  local what=$1 start=${SECONDS} parent=$$; shift
  ( trap exit TERM; while sleep 60 && kill -0 "${parent}" 2>/dev/null; do
      log "still ${what} ($(( (SECONDS - start) / 60 )) min)"; done ) &
  local ticker=$! rc=0
  "$@" || rc=$?
  kill "${ticker}" 2>/dev/null || true
  wait "${ticker}" 2>/dev/null || true
  return "${rc}"
}
