package netrequest

import (
	"encoding/json"
	"fmt"
	"strconv"
)

// AnnotationKey is the annotation that carries a pod's network request (on
// pods) and the list of networks a node has (on nodes).
const AnnotationKey = "networking.x-k8s.io/networks"

// StatusAnnotationKey is the pod annotation that reports the pod's
// attachments in the NPWG network-status format (see FormatNetworkStatus).
const StatusAnnotationKey = "networking.x-k8s.io/network-status"

// MaxNetworks is the most networks one pod may request. It bounds the work
// (and the CNI calls) a single sandbox can cause.
const MaxNetworks = 16

// PrimaryInterface is the pod's interface on the cluster network. Requests
// may not claim it.
const PrimaryInterface = "eth0"

// Request is one requested attachment: the NPWG network selection element
// (v1.3, 4.1.2.1) without a namespace. Name is the network; Interface is
// the interface name inside the pod, empty until AssignInterfaces picks
// one. The other fields are empty when not asked for:
//   - IPs are static addresses in CIDR form ("10.0.0.5/24": the static
//     IPAM plugin refuses a bare address) and MAC a static hardware
//     address, passed as the "ips" and "mac" capability args;
//   - PortMappings and Bandwidth are the "portMappings" and "bandwidth"
//     capability args;
//   - CNIArgs is a JSON object passed to every plugin of the network as its
//     config's args.cni;
//   - DefaultRoute lists gateway addresses (no prefix length), at most one
//     per IP family: the pod's default route of that family goes through
//     this attachment's interface instead of eth0. At most one entry of a
//     request has the default route of a family.
//
// Validate states every rule. A key that needs a capability (ips, mac,
// portMappings, bandwidth) can only be honoured by a network one of whose
// plugins declares it.
type Request struct {
	Name         string          `json:"name"`
	Interface    string          `json:"interface,omitempty"`
	IPs          []string        `json:"ips,omitempty"`
	MAC          string          `json:"mac,omitempty"`
	DefaultRoute []string        `json:"default-route,omitempty"`
	CNIArgs      json.RawMessage `json:"cni-args,omitempty"`
	PortMappings []PortMapping   `json:"portMappings,omitempty"`
	Bandwidth    *Bandwidth      `json:"bandwidth,omitempty"`
}

// PortMapping is one entry of the "portMappings" capability arg, as the
// portmap plugin reads it. Protocol is tcp, udp or sctp in any case, empty
// meaning tcp (as in Kubernetes); the portmap plugin has no default, so
// whoever passes the mapping to CNI sets tcp. HostIP, when set, limits the
// mapping to that host address.
type PortMapping struct {
	HostPort      int32  `json:"hostPort"`
	ContainerPort int32  `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Bandwidth is the "bandwidth" capability arg, as the bandwidth plugin reads
// it: rates in bits per second, bursts in bits; zero means no limit. Per
// direction, rate and burst are both set or both zero.
type Bandwidth struct {
	IngressRate  int64 `json:"ingressRate,omitempty"`
	IngressBurst int64 `json:"ingressBurst,omitempty"`
	EgressRate   int64 `json:"egressRate,omitempty"`
	EgressBurst  int64 `json:"egressBurst,omitempty"`
}

// Capabilities returns the CNI capabilities r needs a plugin of its network
// to declare, in a fixed order: "ips", "mac", "portMappings", "bandwidth";
// nil when it needs none.
func (r *Request) Capabilities() []string {
	var caps []string
	if len(r.IPs) > 0 {
		caps = append(caps, "ips")
	}
	if r.MAC != "" {
		caps = append(caps, "mac")
	}
	if len(r.PortMappings) > 0 {
		caps = append(caps, "portMappings")
	}
	if r.Bandwidth != nil {
		caps = append(caps, "bandwidth")
	}
	return caps
}

// AssignInterfaces returns a copy of reqs in which every empty Interface is
// set to net1, net2, ... in order, skipping names that other entries use
// explicitly: "a@net1,b,c" gives a:net1 b:net2 c:net3, and "a,b@net1" gives
// a:net2 b:net1. Entries with an Interface keep it. Slices, CNIArgs and
// Bandwidth are shared with reqs. It is meant for validated requests (at most
// MaxNetworks), and returns nil for an empty reqs.
func AssignInterfaces(reqs []Request) []Request {
	if len(reqs) == 0 {
		return nil
	}
	out := make([]Request, len(reqs))
	copy(out, reqs)
	next := 1
	for i := range out {
		if out[i].Interface != "" {
			continue
		}
		for {
			name := "net" + strconv.Itoa(next)
			next++
			if !usedExplicitly(reqs, name) {
				out[i].Interface = name
				break
			}
		}
	}
	return out
}

// usedExplicitly reports whether an entry of reqs names ifname. A linear
// scan: requests are short, and this avoids a map per call.
func usedExplicitly(reqs []Request, ifname string) bool {
	for i := range reqs {
		if reqs[i].Interface == ifname {
			return true
		}
	}
	return false
}

// NetworkStatus is one element of the NPWG network-status annotation: the
// result of one attachment, or the pod's primary network (Default set).
type NetworkStatus struct {
	Name      string   `json:"name"`
	Interface string   `json:"interface,omitempty"`
	IPs       []string `json:"ips,omitempty"`
	MAC       string   `json:"mac,omitempty"`
	Default   bool     `json:"default,omitempty"`
	DNS       *DNS     `json:"dns,omitempty"`
}

// DNS is the DNS configuration an attachment reported, as in a CNI result.
type DNS struct {
	Nameservers []string `json:"nameservers,omitempty"`
	Domain      string   `json:"domain,omitempty"`
	Search      []string `json:"search,omitempty"`
}

// FormatNetworkStatus returns the network-status annotation value for st: a
// JSON list in the given order, "[]" when st is empty (never "null", which
// NPWG readers do not expect).
func FormatNetworkStatus(st []NetworkStatus) (string, error) {
	if len(st) == 0 {
		return "[]", nil
	}
	b, err := json.Marshal(st)
	if err != nil {
		return "", fmt.Errorf("network status: %w", err)
	}
	return string(b), nil
}
