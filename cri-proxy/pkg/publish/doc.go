// Package publish writes what the proxy knows to the Kubernetes API on stock
// clusters (annotation mode): the node's available networks as the node
// annotation networking.x-k8s.io/networks, and each pod's attachments as the
// pod annotation networking.x-k8s.io/network-status in the Network Plumbing
// WG network-status format. Writes happen in the background with retries:
// the CRI path never waits on the API server.
//
// Pod statuses go through a workqueue keyed by pod UID: the latest status of
// each pod is written, none is dropped however many pods start at once, and
// a failed write is retried with capped backoff until it lands or the pod is
// gone or replaced under the same name.
package publish
