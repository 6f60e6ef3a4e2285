// Package publish writes what the proxy knows to the Kubernetes API on stock
// clusters (annotation mode): the node's available networks as the node
// annotation networking.x-k8s.io/networks, and each pod's attachments as the
// pod annotation networking.x-k8s.io/network-status in the Network Plumbing
// WG network-status format. Writes happen in the background with retries:
// the CRI path never waits on the API server.
package publish
