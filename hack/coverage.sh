#!/usr/bin/env bash
# Prints the statement coverage of the packages this project touches, for the
# KEP's test plan: ours (unit tests, as make unit runs them, without -race),
# and, in the patched Kubernetes tree of make build, every package the patches
# of staging/ and kubelet-patch/ change, with the coverage of each function the
# patches add. Needs make build first; no root, no cluster.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
heartbeat

cd "${REPO_ROOT}"
tree=${SRC_DIR}/kubernetes-patched
[[ -d "${tree}" ]] || die "${tree} is missing: run make build"
work=$(mktemp -d)
trap 'rm -rf "${work}"' EXIT

log "coverage of this repository's packages (unit tests)"
go test -count=1 -cover ./pkg/... ./scheduler-plugin/pkg/... ./cri-proxy/pkg/... ./cri-proxy/app/... ./admission/... \
  | awk '/coverage:/ {printf "  %-60s %s\n", $2, $5}'

log "coverage of the packages the patches touch, in ${tree}"
# The functions the patches add, as "file.go:func" (file relative to its
# module): their own lines of go tool cover -func.
added=${work}/added
awk '/^\+\+\+ b\// { file = substr($2, 3); next }
     /^\+func / && file !~ /_test\.go$/ {
       line = substr($0, 7); sub(/^\([^)]*\) /, "", line); sub(/[^A-Za-z0-9_].*/, "", line)
       print file ":" line }' staging/*/*.patch kubelet-patch/*.patch | sort -u > "${added}"
pkgs=(./pkg/api/pod/ ./pkg/apis/core/validation/ ./pkg/registry/core/node/ ./pkg/kubelet/ ./pkg/kubelet/kuberuntime/
  ./pkg/kubelet/nodestatus/ ./pkg/scheduler/framework/ ./pkg/scheduler/framework/plugins/nodenetworks/
  k8s.io/component-helpers/nodedeclaredfeatures/features/podnetworks/)
i=0
for p in "${pkgs[@]}"; do
  i=$((i + 1))
  (cd "${tree}" && GOWORK=off GOFLAGS=-mod=mod CGO_ENABLED=0 go test -trimpath -count=1 \
    -coverprofile="${work}/${i}.out" "${p}" | awk '/coverage:/ {printf "  %-60s %s\n", $2, $5}')
  (cd "${tree}" && GOWORK=off GOFLAGS=-mod=mod go tool cover -func="${work}/${i}.out") \
    | awk -v added="${added}" 'BEGIN { while ((getline l < added) > 0) want[l] = 1 }
        { split($1, loc, ":"); for (f in want) { n = split(f, fw, ":")
            if (fw[2] == $2 && substr(loc[1], length(loc[1]) - length(fw[1]) + 1) == fw[1]) {
              printf "      %-58s %s\n", $1 " " $2, $3; break } } }'
done
