package attachment

// Request is one network a pod asks for. The caller fills it from the pod's
// request (package netrequest) after validating it and assigning interface
// names: Attach does not choose names.
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
// key only to plugins that declare the capability.
func (r Request) capabilityArgs() map[string]interface{} {
	args := map[string]interface{}{}
	if len(r.IPs) > 0 {
		args["ips"] = append([]string(nil), r.IPs...)
	}
	if r.MAC != "" {
		args["mac"] = r.MAC
	}
	if len(args) == 0 {
		return nil
	}
	return args
}
