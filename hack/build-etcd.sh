#!/usr/bin/env bash
# Builds etcd at ETCD_VERSION from the Go module proxy into _output/bin/etcd.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
heartbeat

out=${BIN_DIR}/etcd
key="etcd-${ETCD_VERSION}"
fresh etcd "${key}" "${out}" && exit 0
log "building etcd ${ETCD_VERSION}"
# The server module replaces its sibling modules with ../ paths that do not
# exist in the module cache; as a dependency of a throwaway module those
# replaces are ignored and its pinned requirements are used instead.
work=${SRC_DIR}/etcd-build
mkdir -p "${work}" "${BIN_DIR}"
printf 'module etcd-build\n\ngo 1.26.0\n\nrequire go.etcd.io/etcd/server/v3 %s\n' "${ETCD_VERSION}" > "${work}/go.mod"
progress "building etcd" env -C "${work}" GOWORK=off CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "-s -w" -o "${out}" go.etcd.io/etcd/server/v3
stamp etcd "${key}"
