#!/usr/bin/env bash
# Installs the Debian packages a fresh machine lacks: runc (the OCI runtime
# containerd runs), busybox-static (the toolbox image), iptables (to check the
# cluster leaves the host's rules alone), iproute2 and util-linux (ip, nsenter),
# protobuf-compiler (protoc, which go-to-protobuf runs for k8s.io/api).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

packages=(runc busybox-static iptables iproute2 util-linux protobuf-compiler)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "${p}" 2>/dev/null | grep -q 'install ok installed' || missing+=("${p}")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
[[ $(id -u) -eq 0 ]] || die "need root to install: ${missing[*]}"
log "installing ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
