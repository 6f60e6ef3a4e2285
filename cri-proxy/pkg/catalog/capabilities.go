package catalog

import (
	"errors"
	"fmt"
	"slices"

	"github.com/containernetworking/cni/libcni"
)

// declaredCapabilities returns the capabilities some plugin of list declares
// ("capabilities": {"ips": true}), sorted and without duplicates. libcni
// passes a capability arg only to the plugins that declare it: a request
// for one that no plugin declares would be silently ignored.
func declaredCapabilities(list *libcni.NetworkConfigList) []string {
	var caps []string
	for _, p := range list.Plugins {
		for c, declared := range p.Network.Capabilities {
			if declared {
				caps = append(caps, c)
			}
		}
	}
	slices.Sort(caps)
	return slices.Compact(caps)
}

// CheckCapabilities returns nil if some plugin of n declares each of caps,
// else an error naming the network and every capability none declares, e.g.
//
//	network "blue" cannot honour "ips": no plugin of its config declares the "ips" capability
//
// It reads the config n was loaded with: the one Attach records.
func (n Network) CheckCapabilities(caps []string) error {
	var errs []error
	for _, c := range caps {
		if _, found := slices.BinarySearch(n.Capabilities, c); !found {
			errs = append(errs, fmt.Errorf("network %q cannot honour %q: no plugin of its config declares the %q capability", n.Name, c, c))
		}
	}
	return errors.Join(errs...)
}
