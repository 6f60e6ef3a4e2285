package attachment

import (
	"fmt"

	"github.com/containernetworking/cni/pkg/types"
	types100 "github.com/containernetworking/cni/pkg/types/100"
)

// attachmentFromResult reads a network's CNI result: the interface named
// ifname in the sandbox (the one whose Sandbox is netns, else the first of
// that name that is in a sandbox) and its addresses. A result that lists
// no such interface contributes all its addresses.
func attachmentFromResult(network, ifname, netns string, res types.Result) (*Attachment, error) {
	r, err := types100.NewResultFromResult(res)
	if err != nil {
		return nil, fmt.Errorf("result: %w", err)
	}
	att := &Attachment{Network: network, Interface: ifname}
	idx := -1
	for i, intf := range r.Interfaces {
		if intf == nil || intf.Name != ifname || intf.Sandbox == "" {
			continue
		}
		if intf.Sandbox == netns {
			idx = i
			break
		}
		if idx < 0 {
			idx = i
		}
	}
	if idx >= 0 {
		att.MAC = r.Interfaces[idx].Mac
	}
	var own, unbound []*types100.IPConfig
	for _, ip := range r.IPs {
		switch {
		case ip == nil:
		case ip.Interface == nil:
			unbound = append(unbound, ip)
		case *ip.Interface == idx:
			own = append(own, ip)
		case idx < 0:
			unbound = append(unbound, ip)
		}
	}
	if len(own) == 0 {
		own = unbound
	}
	for _, ip := range own {
		att.IPs = append(att.IPs, ip.Address.String())
		if ip.Gateway != nil {
			att.Gateways = append(att.Gateways, ip.Gateway.String())
		}
	}
	return att, nil
}
