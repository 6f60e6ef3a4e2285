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

// Request is one requested attachment. Name is the network; Interface is the
// interface name inside the pod, empty until AssignInterfaces picks one; IPs
// (addresses, optionally with a prefix length) and MAC are static
// assignments the network's plugins must honour, empty when not asked for.
// The JSON form is the NPWG network selection element.
type Request struct {
	Name      string   `json:"name"`
	Interface string   `json:"interface,omitempty"`
	IPs       []string `json:"ips,omitempty"`
	MAC       string   `json:"mac,omitempty"`
}

// AssignInterfaces returns a copy of reqs in which every empty Interface is
// set to net1, net2, ... in order, skipping names that other entries use
// explicitly: "a@net1,b,c" gives a:net1 b:net2 c:net3, and "a,b@net1" gives
// a:net2 b:net1. Entries with an Interface keep it. The IPs slices are
// shared with reqs. It is meant for validated requests (at most
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
