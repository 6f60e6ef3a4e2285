#!/usr/bin/env bash
# Builds the pause and toolbox images as OCI archives in _output/images.
# Nothing is pulled: pause is our own static program, the toolbox is Debian's
# busybox-static. Unchanged images keep their bytes (and digests).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
heartbeat

mkdir -p "${BIN_DIR}" "${OUTPUT_DIR}/images"
cd "${REPO_ROOT}"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${BIN_DIR}/pause" ./hack/images/pause
go build -o "${BIN_DIR}/mkimages" ./hack/images/mkimages
"${BIN_DIR}/mkimages" -out-dir "${OUTPUT_DIR}/images" -pause-binary "${BIN_DIR}/pause" \
  -busybox /bin/busybox -pause-ref "${PAUSE_IMAGE}" -toolbox-ref "${TOOLBOX_IMAGE}" >/dev/null
