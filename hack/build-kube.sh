#!/usr/bin/env bash
# Builds the stock Kubernetes commands named as arguments (kube-apiserver,
# kubelet, ...) at KUBE_VERSION from the Go module cache into _output/bin.
# With none, it only prepares the source tree, the patched build's base.
#
# The k8s.io/kubernetes module zip has no staging/ directory, so the upstream
# tree is rebuilt under _output/src/kubernetes: the module plus each staging
# module at KUBE_STAGING_VERSION in staging/src/k8s.io/<name>. Upstream's own
# go.mod and go.sum then resolve exactly as in a git checkout.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
heartbeat

KUBE_CMDS=("$@")
tree=${SRC_DIR}/kubernetes

prepare_tree() {
  local key="kubernetes-${KUBE_VERSION}-staging-${KUBE_STAGING_VERSION}"
  if [[ -f "${STAMP_DIR}/kube-tree" && "$(cat "${STAMP_DIR}/kube-tree")" == "${key}" ]]; then
    return
  fi
  log "preparing kubernetes ${KUBE_VERSION} source tree in ${tree}"
  local src; src=$(modsrc k8s.io/kubernetes "${KUBE_VERSION}")
  rm -rf "${tree}"; mkdir -p "$(dirname "${tree}")"
  cp -a "${src}" "${tree}"; chmod -R u+w "${tree}"
  rm -rf "${tree}/vendor"   # only OWNERS survives in the zip; its presence would force -mod=vendor
  local name  # every staging module kubernetes requires (required ones are pinned as v0.0.0)
  mkdir -p "${tree}/staging/src/k8s.io"
  for name in $(sed -n 's#^\s*k8s.io/\([a-z-]*\) v0.0.0$#\1#p' "${tree}/go.mod"); do
    local s; s=$(modsrc "k8s.io/${name}" "${KUBE_STAGING_VERSION}")
    cp -a "${s}" "${tree}/staging/src/k8s.io/${name}"
  done
  chmod -R u+w "${tree}/staging"
  stamp kube-tree "${key}"
}

build() {
  [[ ${#KUBE_CMDS[@]} -gt 0 ]] || return 0
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local date; date=$(go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" | sed -n 's/^\s*"Time": "\(.*\)",\?$/\1/p')
  local ldflags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${pkg}.gitVersion=${KUBE_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor}"
    ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${date}"
  done
  local key="${KUBE_VERSION} ${ldflags}" stale=() c
  for c in "${KUBE_CMDS[@]}"; do fresh "kube-bin-${c}" "${key}" "${BIN_DIR}/${c}" || stale+=("${c}"); done
  [[ ${#stale[@]} -gt 0 ]] || return 0
  log "building stock ${stale[*]} ${KUBE_VERSION} (cold: 5-10 min on 2 cores)"
  # -mod=mod: upstream builds from vendor/, which the module zip lacks; a few
  # go.mod requirements (kustomize) are only implied by it.
  local pkgs=(); for c in "${stale[@]}"; do pkgs+=("./cmd/${c}"); done
  mkdir -p "${BIN_DIR}"
  env -C "${tree}" GOWORK=off CGO_ENABLED=0 go build -mod=mod -trimpath -ldflags "${ldflags}" -o "${BIN_DIR}/" "${pkgs[@]}"
  for c in "${stale[@]}"; do stamp "kube-bin-${c}" "${key}"; done
}

prepare_tree
build
