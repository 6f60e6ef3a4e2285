#!/usr/bin/env bash
# Brings up the kind cluster of kind-config/ (see README.md there): builds what
# is missing and stages the node image's context (make kind-image-context),
# builds the node image, creates the cluster (a control plane and two
# workers), loads the toolbox image, applies admission/, gives each node's CRI
# proxy its own credential, and waits until every node is Ready and the
# workers publish their networks. Needs a reachable Docker daemon and kind
# KIND_VERSION (hack/versions.env). CLUSTER_NAME names the cluster (default
# pod-networks); remove it with `kind delete cluster --name pod-networks`.
set -o errexit -o nounset -o pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# kind resolves cluster.yaml's relative hostPaths from the working directory.
cd "${repo}"
# shellcheck source=../hack/versions.env
source hack/versions.env
cluster=${CLUSTER_NAME:-pod-networks}
context=${repo}/_output/kind/image
kubectl=("${repo}/_output/bin/patched/kubectl" --context "kind-${cluster}")
# The identity admission/cri-proxy-policy.yaml expects of a node's proxy.
proxy_user_prefix=system:pod-networks:cri-proxy:
proxy_group=pod-networks:cri-proxies

log() { printf '%s [up] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

command -v docker >/dev/null || die "docker is not installed"
docker info >/dev/null 2>&1 || die "cannot reach the Docker daemon (docker info fails)"
command -v kind >/dev/null || die "kind is not installed: go install sigs.k8s.io/kind@${KIND_VERSION}"
[[ "$(kind version)" == "kind ${KIND_VERSION} "* ]] ||
  die "kind ${KIND_VERSION} is required (its kubeadm config is what the tests check), found: $(kind version)"
if kind get clusters 2>/dev/null | grep -qx "${cluster}"; then
  die "cluster ${cluster} exists: kind delete cluster --name ${cluster}"
fi

log "building what is missing, staging the node image's context (make kind-image-context)"
make kind-image-context
arch=$(go env GOARCH)
[[ "$(docker version --format '{{.Server.Arch}}')" == "${arch}" ]] ||
  die "the Docker daemon runs $(docker version --format '{{.Server.Arch}}'), the binaries are ${arch}"

log "building ${KIND_IMAGE} on ${KIND_NODE_IMAGE}"
docker build --platform "linux/${arch}" --build-arg "KIND_NODE_IMAGE=${KIND_NODE_IMAGE}" -t "${KIND_IMAGE}" "${context}"

log "creating cluster ${cluster}"
kind create cluster --name "${cluster}" --config kind-config/cluster.yaml --image "${KIND_IMAGE}"
kind load image-archive --name "${cluster}" _output/images/toolbox.tar

log "applying admission/ (the Network CRD, the access policy, the proxies' policy)"
"${kubectl[@]}" apply -f admission/network-crd.yaml
"${kubectl[@]}" wait --for=condition=Established --timeout=60s crd/networks.networking.x-k8s.io
"${kubectl[@]}" apply -f admission/cri-proxy-policy.yaml -f admission/network-access-policy.yaml

# kubeadm on the control plane issues each proxy a client certificate signed
# by the cluster CA; restarting the proxy with it turns on the pods'
# network-status annotations (the patched kubelet publishes node networks).
for node in $(kind get nodes --name "${cluster}"); do
  log "${node}: CRI proxy credential ${proxy_user_prefix}${node}"
  docker exec "${cluster}-control-plane" kubeadm kubeconfig user --config /kind/kubeadm.conf \
      --client-name "${proxy_user_prefix}${node}" --org "${proxy_group}" |
    docker exec -i "${node}" sh -c 'umask 077 && cat > /etc/cri-proxy/kubeconfig'
  printf 'CRI_PROXY_ARGS=-kubeconfig=/etc/cri-proxy/kubeconfig -node-name=%s -node-annotation=false\n' "${node}" |
    docker exec -i "${node}" sh -c 'cat > /etc/cri-proxy/cri-proxy.env'
  docker exec "${node}" systemctl restart cri-proxy.service
done

log "waiting for every node Ready, and for the workers' networks"
"${kubectl[@]}" wait --for=condition=Ready node --all --timeout=300s
for node in "${cluster}-worker" "${cluster}-worker2"; do
  for _ in $(seq 60); do
    [[ -n "$("${kubectl[@]}" get node "${node}" -o jsonpath='{.status.networks}')" ]] && break
    sleep 1
  done
  [[ -n "$("${kubectl[@]}" get node "${node}" -o jsonpath='{.status.networks}')" ]] ||
    die "${node} publishes no networks after 60 s: docker exec ${node} journalctl -u cri-proxy -u kubelet"
done
"${kubectl[@]}" get nodes -o custom-columns='NODE:.metadata.name,NETWORKS:.status.networks'

cat <<EOF

Cluster ${cluster} is up (kubectl context kind-${cluster}). Try a pod that asks for blue and red,
which only ${cluster}-worker has:

  _output/bin/patched/kubectl --context kind-${cluster} apply -f - <<'POD'
  apiVersion: v1
  kind: Pod
  metadata:
    name: try
  spec:
    networks:
    - name: blue
    - name: red
      interfaceName: data0
    containers:
    - name: toolbox
      image: ${TOOLBOX_IMAGE}
      imagePullPolicy: Never
      command: ["/bin/sh", "-c", "trap 'exit 0' TERM; sleep 86400 & wait"]
  POD
  _output/bin/patched/kubectl --context kind-${cluster} get pod try -o wide
  _output/bin/patched/kubectl --context kind-${cluster} exec try -- ip -4 -o addr

Remove the cluster: kind delete cluster --name ${cluster}
EOF
