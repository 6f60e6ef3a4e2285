package netrequest

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// maxProblems bounds the problems Validate reports: the error ends up in
// pod events and logs, and a hostile annotation could have thousands.
const maxProblems = 2 * MaxNetworks

// maxIfNameLen is the kernel's IFNAMSIZ minus the terminating NUL.
const maxIfNameLen = 15

// Validate checks requests against every rule, before anything is looked
// up on disk: at most MaxNetworks entries; each name a DNS-1123 label, and
// unique; each interface, when set, a Linux interface name the kernel
// creates as given (1 to 15 printable ASCII bytes, no whitespace, '/', ':'
// or '%', not "." or ".."), without the text form's separators ',' and '@',
// unique, and neither eth0 (the pod's primary interface) nor lo; each ips
// entry an IP address or CIDR; the mac a unicast, non-zero 48-bit MAC (the
// kernel refuses others on an interface). The error joins every problem
// (up to a bound), each naming the entry, e.g.
//
//	networks[2] ("Bad_Name"): name must be a DNS-1123 label: ...
//
// Validate does not modify reqs and returns nil for an empty list.
func Validate(reqs []Request) error {
	var errs []error
	add := func(i int, format string, args ...any) {
		switch {
		case len(errs) < maxProblems:
			errs = append(errs, fmt.Errorf("%s: "+format, append([]any{label(i, reqs[i].Name)}, args...)...))
		case len(errs) == maxProblems:
			errs = append(errs, errors.New("networks: further problems not shown"))
		}
	}
	if len(reqs) > MaxNetworks {
		errs = append(errs, fmt.Errorf("networks: %d entries, at most %d allowed", len(reqs), MaxNetworks))
	}
	// Short lists (the only valid ones) are checked for duplicates by
	// scanning; long ones use maps so a hostile list stays linear.
	var names, ifnames map[string]int
	if len(reqs) > MaxNetworks {
		names, ifnames = make(map[string]int, len(reqs)), make(map[string]int, len(reqs))
	}
	for i := 0; i < len(reqs) && len(errs) <= maxProblems; i++ {
		r := &reqs[i]
		if msg := checkName(r.Name); msg != "" {
			add(i, "%s", msg)
		} else if j := earlier(reqs, i, r.Name, names, func(r *Request) string { return r.Name }); j >= 0 {
			add(i, "duplicate name, also networks[%d]", j)
		}
		if r.Interface != "" {
			if msg := checkInterface(r.Interface); msg != "" {
				add(i, "interface %q: %s", r.Interface, msg)
			} else if j := earlier(reqs, i, r.Interface, ifnames, func(r *Request) string { return r.Interface }); j >= 0 {
				add(i, "interface %q is also used by networks[%d]", r.Interface, j)
			}
		}
		for k, ip := range r.IPs {
			if !validIPOrCIDR(ip) {
				add(i, "ips[%d] %q: not an IP address or CIDR", k, ip)
			}
		}
		if r.MAC != "" {
			if msg := checkMAC(r.MAC); msg != "" {
				add(i, "mac %q: %s", r.MAC, msg)
			}
		}
	}
	return errors.Join(errs...)
}

// label names entry i of a request or node list in errors.
func label(i int, name string) string {
	return fmt.Sprintf("networks[%d] (%q)", i, name)
}

// earlier returns the index of the first entry before i whose field (per
// get) equals v, or -1. With a nil index it scans; otherwise it uses and
// fills index.
func earlier(reqs []Request, i int, v string, index map[string]int, get func(*Request) string) int {
	if index == nil {
		for j := 0; j < i; j++ {
			if get(&reqs[j]) == v {
				return j
			}
		}
		return -1
	}
	if j, ok := index[v]; ok {
		return j
	}
	index[v] = i
	return -1
}

// checkName returns what is wrong with a network name, or "".
func checkName(name string) string {
	if name == "" {
		return "name is required"
	}
	if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
		return "name must be a DNS-1123 label: " + strings.Join(msgs, "; ")
	}
	return ""
}

// checkInterface returns what is wrong with a requested interface name, or
// "". The kernel rules are dev_valid_name's, and '%', which makes the kernel
// choose a name from the given one as a pattern; printable ASCII is ours, so
// names stay readable in logs and in `ip link` output; ',' and '@' are the
// text form's separators, so that every request can be written in it.
// kube-apiserver's validation of spec.networks applies the same rules
// (testdata/rules.json, which both test).
func checkInterface(s string) string {
	switch {
	case s == "" || len(s) > maxIfNameLen:
		return fmt.Sprintf("must be 1 to %d bytes long", maxIfNameLen)
	case s == "." || s == "..":
		return `must not be "." or ".."`
	case s == PrimaryInterface:
		return "is the pod's primary interface"
	case s == "lo":
		return "is the pod's loopback interface"
	}
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c <= ' ' || c >= 0x7f:
			return "must be printable ASCII without whitespace"
		case strings.IndexByte("/:%,@", c) >= 0:
			return "must not contain '/', ':', '%', ',' or '@'"
		}
	}
	return ""
}

// validIPOrCIDR reports whether s is an IP address, with or without a
// prefix length.
func validIPOrCIDR(s string) bool {
	if net.ParseIP(s) != nil {
		return true
	}
	_, _, err := net.ParseCIDR(s)
	return err == nil
}

// checkMAC returns what is wrong with a requested MAC address, or "".
func checkMAC(s string) string {
	hw, err := net.ParseMAC(s)
	switch {
	case err != nil || len(hw) != 6:
		return "not a 48-bit MAC address"
	case hw[0]&1 != 0:
		return "multicast address, cannot be assigned to an interface"
	case hw[0]|hw[1]|hw[2]|hw[3]|hw[4]|hw[5] == 0:
		return "all-zero address"
	}
	return ""
}
