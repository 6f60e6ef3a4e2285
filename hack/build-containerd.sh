#!/usr/bin/env bash
# Builds containerd, ctr and containerd-shim-runc-v2 at CONTAINERD_VERSION from
# the Go module cache into _output/bin, with the tags and flags upstream uses.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
heartbeat

outs=("${BIN_DIR}/containerd" "${BIN_DIR}/ctr" "${BIN_DIR}/containerd-shim-runc-v2")
pkg=github.com/containerd/containerd/v2
ldflags="-s -w -X ${pkg}/version.Version=${CONTAINERD_VERSION} -X ${pkg}/version.Package=${pkg}"
key="containerd-${CONTAINERD_VERSION} ${ldflags}"
fresh containerd "${key}" "${outs[@]}" && exit 0
log "building containerd ${CONTAINERD_VERSION} (cold: ~75 s)"
src=$(modsrc "${pkg}" "${CONTAINERD_VERSION}")
mkdir -p "${BIN_DIR}"
progress "building containerd" env -C "${src}" CGO_ENABLED=1 \
  go build -trimpath -tags "no_btrfs urfave_cli_no_docs" -ldflags "${ldflags}" -o "${BIN_DIR}/" ./cmd/containerd ./cmd/ctr
progress "building containerd-shim-runc-v2" env -C "${src}" CGO_ENABLED=0 \
  go build -trimpath -tags "urfave_cli_no_docs no_grpc" -ldflags "${ldflags}" -o "${BIN_DIR}/" ./cmd/containerd-shim-runc-v2
stamp containerd "${key}"
