package attachment

import (
	"cmp"
	"encoding/json"
	"slices"
	"strings"

	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// Request is one network a pod asks for. The caller fills it from the pod's
// request (package netrequest) after validating it and assigning interface
// names: Attach does not choose names. The capability args (IPs, MAC,
// PortMappings, Bandwidth) need a plugin of the network that declares the
// capability, or Attach fails before any ADD (see Capabilities).
type Request struct {
	// Name is the network's name: the name of a config list in the Store.
	Name string
	// Interface is the interface name inside the sandbox (net1, net2, ...).
	Interface string
	// IPs are static addresses in CIDR form, passed to plugins that declare
	// the "ips" capability. Empty means the network's IPAM chooses.
	IPs []string
	// MAC is a static hardware address, passed to plugins that declare the
	// "mac" capability. Empty means the plugin chooses.
	MAC string
	// DefaultRoute lists gateway addresses (no prefix), at most one per IP
	// family across all the requests of a sandbox: once every ADD
	// succeeded, the sandbox's default route of that family goes via the
	// gateway on this interface, and its other default routes of that
	// family (eth0's) are removed.
	DefaultRoute []string
	// CNIArgs is a JSON object merged into args.cni of every plugin config
	// of the network (its keys win over the config's); the merged config
	// is recorded and used by DEL too.
	CNIArgs json.RawMessage
	// PortMappings are passed to plugins that declare the "portMappings"
	// capability (portmap).
	PortMappings []netrequest.PortMapping
	// Bandwidth is passed to plugins that declare the "bandwidth"
	// capability (bandwidth).
	Bandwidth *netrequest.Bandwidth
}

// Capabilities returns the CNI capabilities some plugin of r's network must
// declare for r to be honoured: those of netrequest.Request.Capabilities.
func (r Request) Capabilities() []string {
	nr := netrequest.Request{IPs: r.IPs, MAC: r.MAC, PortMappings: r.PortMappings, Bandwidth: r.Bandwidth}
	return nr.Capabilities()
}

// PodRef identifies the pod and sandbox an attachment belongs to. The
// sandbox ID is the CNI container ID of every attachment. Kubelet makes one
// sandbox per pod UID and attempt, so UID and Attempt name a sandbox before
// the runtime has given it an ID.
type PodRef struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	UID       string `json:"uid"`
	Attempt   uint32 `json:"attempt"`
	SandboxID string `json:"sandboxID,omitempty"`
}

// String is namespace/name, for messages.
func (p PodRef) String() string { return p.Namespace + "/" + p.Name }

// key names the sandbox of pod p by UID and attempt.
func (p PodRef) key() sandboxKey { return sandboxKey{uid: p.UID, attempt: p.Attempt} }

// sandboxKey names a sandbox by pod UID and attempt.
type sandboxKey struct {
	uid     string
	attempt uint32
}

// Attachment is one network attached to a sandbox, as the CNI result
// reported it.
type Attachment struct {
	// Network is the network's name.
	Network string `json:"network"`
	// Interface is the interface name inside the sandbox.
	Interface string `json:"interface"`
	// MAC is the interface's hardware address, if the plugin reported it.
	MAC string `json:"mac,omitempty"`
	// IPs are the interface's addresses in CIDR form.
	IPs []string `json:"ips,omitempty"`
	// Gateways are the gateways the result lists for those addresses.
	Gateways []string `json:"gateways,omitempty"`
}

// cniArgs returns the CNI_ARGS containerd passes for the pod's primary
// network, so plugins can tell which pod an attachment belongs to.
func (p PodRef) cniArgs() [][2]string {
	return [][2]string{
		{"IgnoreUnknown", "1"},
		{"K8S_POD_NAMESPACE", p.Namespace},
		{"K8S_POD_NAME", p.Name},
		{"K8S_POD_INFRA_CONTAINER_ID", p.SandboxID},
		{"K8S_POD_UID", p.UID},
	}
}

// capabilityArgs returns the runtime config of a request: libcni passes each
// key only to plugins that declare the capability. The keys are those of
// Capabilities; libcni caches the map as JSON, and capabilityRequest reads
// it back.
func (r Request) capabilityArgs() map[string]interface{} {
	args := map[string]interface{}{}
	if len(r.IPs) > 0 {
		args["ips"] = slices.Clone(r.IPs)
	}
	if r.MAC != "" {
		args["mac"] = r.MAC
	}
	if len(r.PortMappings) > 0 {
		pms := slices.Clone(r.PortMappings)
		for i := range pms {
			// portmap passes the protocol to iptables or nft as is: nft
			// knows lower case only, and neither an empty one. Kubernetes
			// defaults it to TCP.
			pms[i].Protocol = strings.ToLower(cmp.Or(pms[i].Protocol, "tcp"))
		}
		args["portMappings"] = pms
	}
	if r.Bandwidth != nil {
		bw := *r.Bandwidth
		args["bandwidth"] = &bw
	}
	if len(args) == 0 {
		return nil
	}
	return args
}
