#!/usr/bin/env bash
# Builds the patched Kubernetes (the PodNetworks API, kubelet, apiserver and
# scheduler changes) into _output/bin/patched, next to the stock binaries:
# the commands named as arguments (kube-apiserver, kubelet, ...), where
# pod-networks-scheduler is the NodeNetworks scheduler built in that tree.
#
# The tree, _output/src/kubernetes-patched, is the stock tree of
# build-kube.sh with k8s.io/api and k8s.io/cri-api replaced by the patched
# modules of build-staging.sh and kubelet-patch/*.patch applied in order (a
# patch that does not apply fails the build, naming it). Then the upstream
# generators rewrite what the patches make stale: deepcopy-gen
# (pkg/apis/core), openapi-gen (pkg/generated/openapi) and
# applyconfiguration-gen (client-go applyconfigurations). The NodeNetworks
# scheduler is built in the same tree, against the patched API, with its
# native field reader (build tag podnetworks_native).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
heartbeat

KUBE_CMDS=("$@")
stock=${SRC_DIR}/kubernetes
tree=${SRC_DIR}/kubernetes-patched
out=${BIN_DIR}/patched
gen=${SRC_DIR}/tools/code-generator
export GOWORK=off GOFLAGS="${GOFLAGS} -mod=mod"

prepare_tree() {
  # Not the staging-api-fixtures stamp: no test of this tree reads them.
  local key; key="${KUBE_VERSION} $(cat "${REPO_ROOT}"/kubelet-patch/*.patch "${REPO_ROOT}"/pkg/netrequest/testdata/rules.json "${STAMP_DIR}"/staging-{api,cri-api,component-helpers} "$0" | sha256sum | cut -c1-16)"
  key+=" plugin:$(scheduler_plugin_sum)"  # add_scheduler_plugin copies it into the tree at build
  if fresh kube-patched-tree "${key}" && [[ -d "${tree}" ]]; then return; fi
  log "patching kubernetes ${KUBE_VERSION} in ${tree}"
  rm -f "${STAMP_DIR}/kube-patched-tree"
  rm -rf "${tree}"; cp -a "${stock}" "${tree}"
  local m; for m in api cri-api component-helpers; do
    rm -rf "${tree}/staging/src/k8s.io/${m}"
    cp -a "${SRC_DIR}/staging/${m}" "${tree}/staging/src/k8s.io/${m}"
  done
  local p; for p in "${REPO_ROOT}"/kubelet-patch/*.patch; do
    patch -d "${tree}" -p1 --forward --batch --quiet < "${p}" || die "patch $(basename "${p}") does not apply to kubernetes ${KUBE_VERSION}"
  done
  # The rules spec.networks shares with pkg/netrequest, for networks_rules_test.go.
  install -D -m 0644 "${REPO_ROOT}/pkg/netrequest/testdata/rules.json" "${tree}/pkg/apis/core/validation/testdata/podnetworks-rules.json"
  generate
  stamp kube-patched-tree "${key}"
}

generate() {
  local tools=${tree}/_tools; mkdir -p "${tools}"
  [[ -x "${gen}/deepcopy-gen" ]] || die "${gen}/deepcopy-gen is missing: run hack/build-staging.sh"
  local g; for g in applyconfiguration-gen conversion-gen validation-gen; do
    progress "building ${g}" env -C "${gen}" go build -o "${tools}/${g}" "./cmd/${g}"
  done
  # The tools built in the tree use the binaries' flags, so that the packages
  # they share (all of k8s.io/api, for models-schema) compile once.
  progress "building openapi-gen" env -C "${tree}" CGO_ENABLED=0 go build -trimpath -o "${tools}/openapi-gen" k8s.io/kube-openapi/cmd/openapi-gen
  local header=${tools}/boilerplate.txt
  sed -n '/^\/\*$/,/^\*\/$/p' "${tree}/pkg/apis/core/zz_generated.deepcopy.go" > "${header}"
  cd "${tree}"

  log "deepcopy-gen pkg/apis/core"
  "${gen}/deepcopy-gen" --go-header-file "${header}" --output-file zz_generated.deepcopy.go ./pkg/apis/core

  # conversion-gen and validation-gen as hack/update-codegen.sh runs them,
  # for the package whose types the patches change: run over the stock tree,
  # both reproduce upstream's files exactly. validation-gen also regenerates
  # meta/v1's validations (which core/v1's call; unchanged) and the coverage
  # fixtures of test/declarative_validation/core/<kind>.
  log "conversion-gen pkg/apis/core/v1"
  "${tools}/conversion-gen" --go-header-file "${header}" --output-file zz_generated.conversion.go \
    --lint-rules=known-tags-only,require-explicit-disablement \
    --extra-peer-dirs k8s.io/kubernetes/pkg/apis/core,k8s.io/kubernetes/pkg/apis/core/v1,k8s.io/api/core/v1 ./pkg/apis/core/v1
  log "validation-gen pkg/apis/core/v1"
  "${tools}/validation-gen" --go-header-file "${header}" --output-file zz_generated.validations.go \
    --test-output-root test/declarative_validation --test-output-file-prefix zz_generated.validations. \
    --test-allowlist test/declarative_validation/coverage-allowlist.yaml \
    --lint-rules=known-tags-only,require-explicit-disablement \
    $(printf -- ' --readonly-pkg %s' k8s.io/apimachinery/pkg/api/resource k8s.io/apimachinery/pkg/runtime \
      k8s.io/apimachinery/pkg/types k8s.io/apimachinery/pkg/util/intstr time) \
    k8s.io/apimachinery/pkg/apis/meta/v1/validation ./pkg/apis/core/v1

  log "openapi-gen pkg/generated/openapi"
  local pkgs=() d  # the packages tagged +k8s:openapi, as hack/update-codegen.sh finds them
  while IFS= read -r d; do
    if [[ "${d}" == staging/src/* ]]; then pkgs+=("${d#staging/src/}"); else pkgs+=("k8s.io/kubernetes/${d}"); fi
  done < <(grep -rl --include='*.go' --exclude-dir=testdata --exclude-dir=_tools -e '^// *+k8s:' pkg cmd plugin staging/src \
      | grep -v -E '^staging/src/k8s.io/(code-generator|sample-apiserver|sample-controller)/' \
      | xargs grep -l '+k8s:openapi' | xargs -n1 dirname | sort -u)
  progress "running openapi-gen" "${tools}/openapi-gen" --go-header-file "${header}" --output-file zz_generated.openapi.go \
    --output-dir pkg/generated/openapi --output-pkg k8s.io/kubernetes/pkg/generated/openapi \
    --report-filename "${tools}/api_violations.report" --output-model-name-file zz_generated.model_name.go "${pkgs[@]}"
  diff -u api/api-rules/violation_exceptions.list "${tools}/api_violations.report" >&2 || die "API rule violations changed"

  log "applyconfiguration-gen client-go/applyconfigurations"
  progress "building models-schema" env CGO_ENABLED=0 go build -trimpath -o "${tools}/models-schema" ./pkg/generated/openapi/cmd/models-schema
  local apis=()
  while IFS= read -r d; do apis+=("${d#staging/src/}"); done < <(find staging/src/k8s.io/api -name types.go -not -path '*/testdata/*' | xargs -n1 dirname | sort -u)
  apis+=(k8s.io/apimachinery/pkg/apis/meta/v1)
  grep -rl --include='*.go' -e '^// Code generated by applyconfiguration-gen. DO NOT EDIT.$' staging/src/k8s.io/client-go | xargs rm -f
  "${tools}/applyconfiguration-gen" --openapi-schema <("${tools}/models-schema") --go-header-file "${header}" \
    --output-dir staging/src/k8s.io/client-go/applyconfigurations --output-pkg k8s.io/client-go/applyconfigurations "${apis[@]}"
  rm -rf "${tools}"
}

# add_scheduler_plugin copies the NodeNetworks plugin, scheduler-plugin/pkg/nodenetworks (its
# one source), into the tree as the in-tree plugin pkg/scheduler/framework/plugins/nodenetworks
# (registered, and in the default profile with the PodNetworks gate on, by
# kubelet-patch/0005-scheduler-in-tree.patch), and pkg/netrequest as k8s.io/kubernetes/podnetworks/netrequest,
# rewriting their imports. In the tree, kube-scheduler compiles the plugin as the repository's build
# tag podnetworks_intree selects its files (source_intree.go: the native fields only, no args) and
# pod-networks-scheduler is the same command built with -tags podnetworks_native (source_native.go:
# the annotations too, and args), so each binary registers NodeNetworks once. Every file that either
# build selects is copied, tests included, with its constraint in the tree: none when both select it,
# podnetworks_native or !podnetworks_native when one does. Stock-only files (source.go) are not.
add_scheduler_plugin() {
  local src=${REPO_ROOT}/scheduler-plugin/pkg/nodenetworks dst=${tree}/pkg/scheduler/framework/plugins/nodenetworks
  local nr=${tree}/podnetworks/netrequest
  rm -rf "${tree}/podnetworks" "${dst}"; mkdir -p "${nr}" "${dst}"
  local f t
  for f in "${REPO_ROOT}"/pkg/netrequest/*.go; do [[ "${f}" == *_test.go ]] || cp "${f}" "${nr}/"; done
  local -A builds=()
  for t in podnetworks_intree podnetworks_native; do
    for f in $(env -C "${src}" GOFLAGS=-mod=readonly go list -e -tags "${t}" -f '{{join .GoFiles " "}} {{join .TestGoFiles " "}}' .); do
      builds[${f}]+=" ${t}"
    done
  done
  [[ ${#builds[@]} -gt 0 ]] || die "no files of ${src} for the patched tree"
  for f in "${!builds[@]}"; do
    local c
    case "${builds[${f}]}" in
      " podnetworks_intree podnetworks_native") c="" ;;
      " podnetworks_native") c="//go:build podnetworks_native" ;;
      " podnetworks_intree") c="//go:build !podnetworks_native" ;;
      *) die "${f}: unexpected builds${builds[${f}]}" ;;
    esac
    { [[ -z "${c}" ]] || printf '%s\n\n' "${c}"
      sed -e '/^\/\/go:build /{N;d;}' \
          -e 's#sigs.k8s.io/pod-networks/pkg/netrequest#k8s.io/kubernetes/podnetworks/netrequest#' \
          -e 's#sigs.k8s.io/pod-networks/scheduler-plugin/pkg/nodenetworks#k8s.io/kubernetes/pkg/scheduler/framework/plugins/nodenetworks#' \
          "${src}/${f}"; } > "${dst}/${f}"
  done
}

# scheduler_plugin_sum hashes what add_scheduler_plugin copies, for the tree's stamp.
scheduler_plugin_sum() {
  cat "${REPO_ROOT}"/pkg/netrequest/*.go "${REPO_ROOT}"/scheduler-plugin/pkg/nodenetworks/*.go | sha256sum | cut -c1-16
}

build() {
  add_scheduler_plugin
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local ldflags="-s -w" pkg
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${pkg}.gitVersion=${KUBE_VERSION} -X ${pkg}.gitMajor=1 -X ${pkg}.gitMinor=${minor} -X ${pkg}.gitTreeState=clean"
  done
  # The tree's stamp covers the plugin's sources (scheduler_plugin_sum).
  local key; key="$(cat "${STAMP_DIR}/kube-patched-tree") ${ldflags}"
  local stale=() c
  for c in "${KUBE_CMDS[@]}"; do
    fresh "kube-patched-bin-${c}" "${key}" "${out}/${c}" || stale+=("${c}")
  done
  [[ ${#stale[@]} -gt 0 ]] || return 0
  log "building patched ${stale[*]} (cold: 10-15 min on 2 cores)"
  mkdir -p "${out}"
  local pkgs=()
  for c in "${stale[@]}"; do [[ "${c}" == pod-networks-scheduler ]] || pkgs+=("./cmd/${c}"); done
  if [[ ${#pkgs[@]} -gt 0 ]]; then
    progress "building patched ${pkgs[*]}" env -C "${tree}" CGO_ENABLED=0 go build -trimpath -ldflags "${ldflags}" -o "${out}/" "${pkgs[@]}"
  fi
  # pod-networks-scheduler: kube-scheduler with the plugin's native build (see add_scheduler_plugin).
  if [[ " ${stale[*]} " == *" pod-networks-scheduler "* ]]; then
    progress "building patched pod-networks-scheduler" env -C "${tree}" CGO_ENABLED=0 go build -trimpath -tags podnetworks_native \
      -ldflags "${ldflags}" -o "${out}/pod-networks-scheduler" ./cmd/kube-scheduler
  fi
  for c in "${stale[@]}"; do stamp "kube-patched-bin-${c}" "${key}"; done
}

prepare_tree
build
