package attachment

import (
	"errors"
	"fmt"
	"net"
	"slices"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// defaultRoute is a default route a request asks for (NPWG default-route):
// via gw on the interface ifname of network.
type defaultRoute struct {
	network, ifname string
	gw              net.IP
}

// String names the route in errors.
func (r defaultRoute) String() string {
	return fmt.Sprintf("network %q (interface %s): default route via %s", r.network, r.ifname, r.gw)
}

// family is the route's netlink address family.
func (r defaultRoute) family() int {
	if r.gw.To4() != nil {
		return netlink.FAMILY_V4
	}
	return netlink.FAMILY_V6
}

// defaultRoutes returns the default routes rec's requests ask for, in
// request order. The gateways were validated by validateAttach.
func (rec *record) defaultRoutes() []defaultRoute {
	var out []defaultRoute
	for _, a := range rec.Attachments {
		for _, gw := range a.DefaultRoute {
			if ip := net.ParseIP(gw); ip != nil {
				out = append(out, defaultRoute{network: a.Network, ifname: a.Interface, gw: ip})
			}
		}
	}
	return out
}

// setDefaultRoutes makes each of routes, in the network namespace at
// netnsPath, the default route of its gateway's IP family, and removes the
// other default routes of that family (the primary network's, on eth0).
// Routes of the main table only are considered, as the primary network's
// plugin sets them there.
//
// If any step fails (a gateway that is not reachable on its interface is
// refused by the kernel: "network is unreachable"), the default routes of
// the families already changed are put back as they were, and the error
// names the network, interface and gateway. Deleting the attachment's
// interface later removes its route with it.
func setDefaultRoutes(netnsPath string, routes []defaultRoute) error {
	if len(routes) == 0 {
		return nil
	}
	netns, err := ns.GetNS(netnsPath)
	if err != nil {
		errs := make([]error, len(routes))
		for i, r := range routes {
			errs[i] = fmt.Errorf("%s: %w", r, err)
		}
		return errors.Join(errs...)
	}
	defer netns.Close()
	return netns.Do(func(ns.NetNS) error { return replaceDefaultRoutes(routes) })
}

// replaceDefaultRoutes is setDefaultRoutes in the namespace of the calling
// thread.
func replaceDefaultRoutes(routes []defaultRoute) (retErr error) {
	// saved are the default routes of the changed families as they were.
	saved := map[int][]netlink.Route{}
	success := false
	defer func() {
		if success {
			return
		}
		for family, old := range saved {
			if err := restoreDefaultRoutes(family, old); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("restore the default routes: %w", err))
			}
		}
	}()
	for _, r := range routes {
		if err := replaceDefaultRoute(r, saved); err != nil {
			return fmt.Errorf("%s: %w", r, err)
		}
	}
	success = true
	return nil
}

// replaceDefaultRoute sets r and removes the other default routes of its
// family, after saving them in saved.
func replaceDefaultRoute(r defaultRoute, saved map[int][]netlink.Route) error {
	link, err := netlink.LinkByName(r.ifname)
	if err != nil {
		return fmt.Errorf("interface: %w", err)
	}
	family := r.family()
	old, err := listDefaultRoutes(family)
	if err != nil {
		return err
	}
	if _, ok := saved[family]; !ok {
		saved[family] = old
	}
	want := &netlink.Route{LinkIndex: link.Attrs().Index, Dst: anyNet(family), Gw: r.gw, Scope: netlink.SCOPE_UNIVERSE}
	if err := netlink.RouteReplace(want); err != nil {
		return err
	}
	// IPv4 replaces the route of the same priority; IPv6, and routes of
	// other priorities, are left: remove them.
	current, err := listDefaultRoutes(family)
	if err != nil {
		return err
	}
	for _, o := range current {
		if o.LinkIndex == want.LinkIndex && o.Gw.Equal(r.gw) {
			continue
		}
		if err := netlink.RouteDel(&o); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("remove the default route %s: %w", o, err)
		}
	}
	return nil
}

// restoreDefaultRoutes makes old the default routes of family again.
func restoreDefaultRoutes(family int, old []netlink.Route) error {
	current, err := listDefaultRoutes(family)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range current {
		if slices.ContainsFunc(old, func(o netlink.Route) bool { return o.Equal(c) }) {
			continue
		}
		if err := netlink.RouteDel(&c); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("remove %s: %w", c, err))
		}
	}
	for _, o := range old {
		if err := netlink.RouteAdd(&o); err != nil && !errors.Is(err, unix.EEXIST) {
			errs = append(errs, fmt.Errorf("add %s: %w", o, err))
		}
	}
	return errors.Join(errs...)
}

// listDefaultRoutes returns the default routes of family in the main table.
func listDefaultRoutes(family int) ([]netlink.Route, error) {
	routes, err := netlink.RouteListFiltered(family, &netlink.Route{Dst: anyNet(family)}, netlink.RT_FILTER_DST)
	if err != nil {
		return nil, fmt.Errorf("list the default routes: %w", err)
	}
	return routes, nil
}

// anyNet is 0.0.0.0/0 or ::/0.
func anyNet(family int) *net.IPNet {
	if family == netlink.FAMILY_V4 {
		return &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}
	}
	return &net.IPNet{IP: net.IPv6zero, Mask: net.CIDRMask(0, 128)}
}
