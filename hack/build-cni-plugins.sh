#!/usr/bin/env bash
# Builds the CNI plugins listed in CNI_PLUGINS at CNI_PLUGINS_VERSION from the
# Go module cache into _output/bin/cni.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
heartbeat

out_dir=${BIN_DIR}/cni
IFS=, read -r -a names <<< "${CNI_PLUGINS}"
outs=(); for n in "${names[@]}"; do outs+=("${out_dir}/${n}"); done
pkg=github.com/containernetworking/plugins
ldflags="-s -w -X ${pkg}/pkg/utils/buildversion.BuildVersion=${CNI_PLUGINS_VERSION}"
key="cni-plugins-${CNI_PLUGINS_VERSION} ${CNI_PLUGINS} ${ldflags}"
fresh cni-plugins "${key}" "${outs[@]}" && exit 0
log "building CNI plugins ${CNI_PLUGINS_VERSION}: ${CNI_PLUGINS}"
src=$(modsrc "${pkg}" "${CNI_PLUGINS_VERSION}")
pkgs=()
for n in "${names[@]}"; do
  d=$(cd "${src}" && ls -d plugins/*/"${n}" 2>/dev/null | head -n 1) || true
  [[ -n "${d}" ]] || die "no CNI plugin named ${n} in ${pkg}@${CNI_PLUGINS_VERSION}"
  pkgs+=("./${d}")
done
mkdir -p "${out_dir}"
progress "building CNI plugins" env -C "${src}" CGO_ENABLED=0 go build -trimpath -ldflags "${ldflags}" -o "${out_dir}/" "${pkgs[@]}"
stamp cni-plugins "${key}"
