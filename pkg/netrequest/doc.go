// Package netrequest parses and validates the networks a pod asks for, and
// formats what nodes and pods publish about them. The CRI proxy (which
// attaches networks) and the scheduler plugin (which places pods only on
// nodes that have them) share it, so both read a request the same way.
//
// A pod asks with the annotation networking.x-k8s.io/networks, in the
// Network Plumbing WG network selection format (v1.3, section 4.1): either
// a comma-separated list of name[@interface], or a JSON list of objects with
// the keys name, interface, ips, mac, default-route, cni-args, portMappings
// and bandwidth (see Request). Static addresses ("ips") must be in CIDR form
// ("10.0.0.5/24", not "10.0.0.5"), as the static IPAM plugin requires:
// Validate refuses others before any sandbox is made. Networks here are
// node-level, so the NPWG namespace (text form ns/name, JSON key
// "namespace") is rejected, as are the NPWG keys this project does not
// implement (infiniband-guid, ipam-claim-reference).
//
// Errors name the entry and the key at fault and are at most MaxErrorLen
// bytes, however large or malformed the request: they end up in events,
// statuses and logs.
//
// A node publishes the networks it has under the same annotation key, as a
// sorted comma-separated list of names; pods get the NPWG network-status
// annotation networking.x-k8s.io/network-status.
//
// Parse is what callers normally want. ParseAnnotation, Validate and
// AssignInterfaces are its steps, exported for callers that get requests
// from elsewhere (such as the native CRI field) and must apply the same
// rules. Validation happens before anything looks a name up on disk.
package netrequest
