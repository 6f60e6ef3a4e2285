#!/usr/bin/env bash
# Stages the docker build context of the kind node image
# (kind-config/image/Dockerfile) in _output/kind/image, from what make built:
# the patched kubelet, kube-apiserver, kube-controller-manager and
# pod-networks-scheduler, the CNI plugins of CNI_PLUGINS, a static cri-proxy,
# and the image's files (kind-config/image, scheduler-plugin/config). The
# context is laid anew each run, so nothing stale stays; binaries are hard
# links, and the proxy's build is incremental: a rerun takes under a second.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ctx=${OUTPUT_DIR}/kind/image
files=${REPO_ROOT}/kind-config/image
patched=(kubelet kube-apiserver kube-controller-manager pod-networks-scheduler)
IFS=, read -r -a plugins <<< "${CNI_PLUGINS}"

for b in "${patched[@]}"; do
  [[ -x "${BIN_DIR}/patched/${b}" ]] || die "${BIN_DIR}/patched/${b} is missing: run make build-demo"
done
for p in "${plugins[@]}"; do
  [[ -x "${BIN_DIR}/cni/${p}" ]] || die "${BIN_DIR}/cni/${p} is missing: run make build-demo"
done

# _output/bin/cri-proxy links the build host's libc; the node image is
# another distribution.
cd "${REPO_ROOT}"
progress "building a static cri-proxy for the node image" \
  env CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "${OUTPUT_DIR}/kind/cri-proxy" ./cri-proxy/cmd/cri-proxy

link() { ln -f "$1" "$2" 2>/dev/null || cp -p "$1" "$2"; }
rm -rf "${ctx}"
install -d -m 0755 "${ctx}/bin" "${ctx}/cni" "${ctx}/kubeadm-patches"
for b in "${patched[@]}"; do link "${BIN_DIR}/patched/${b}" "${ctx}/bin/${b}"; done
link "${OUTPUT_DIR}/kind/cri-proxy" "${ctx}/bin/cri-proxy"
for p in "${plugins[@]}"; do link "${BIN_DIR}/cni/${p}" "${ctx}/cni/${p}"; done
install -m 0644 "${files}/Dockerfile" "${files}/cri-proxy.service" "${files}/20-cri-proxy.conf" \
  "${REPO_ROOT}/scheduler-plugin/config/scheduler-config.yaml" "${ctx}/"
install -m 0644 "${files}"/kubeadm-patches/*.yaml "${ctx}/kubeadm-patches/"
log "kind node image context: ${ctx} (docker build --build-arg KIND_NODE_IMAGE=${KIND_NODE_IMAGE} ${ctx})"
