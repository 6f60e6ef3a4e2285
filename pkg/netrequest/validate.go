package netrequest

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Bounds on one entry's keys: far above what a pod needs, they keep the
// work a request causes, and its stored state, small.
const (
	maxIPs          = 16
	maxPortMappings = 64
	maxCNIArgsLen   = 4096
)

// maxIfNameLen is the kernel's IFNAMSIZ minus the terminating NUL.
const maxIfNameLen = 15

// maxBurst is the largest burst, in bits, the bandwidth plugin takes: it
// refuses burst/8 >= math.MaxUint32 (validateRateAndBurst).
const maxBurst = 8*math.MaxUint32 - 1

// Validate checks requests against every rule, before anything is looked
// up on disk or a sandbox is made:
//   - at most MaxNetworks entries;
//   - each name a DNS-1123 label, and unique;
//   - each interface, when set, a Linux interface name the kernel creates
//     as given (1 to 15 printable ASCII bytes, no whitespace, '/', ':' or
//     '%', not "." or ".."), without the text form's separators ',' and
//     '@', unique, and neither eth0 (the pod's primary interface) nor lo;
//   - ips: at most 16, each an address in CIDR form (address/prefix, as the
//     static IPAM plugin requires: "10.0.0.5" is refused, "10.0.0.5/24"
//     accepted), no address twice;
//   - mac: a unicast, non-zero 48-bit MAC (the kernel refuses others on an
//     interface);
//   - default-route: IP addresses without prefix length, at most one per IP
//     family in an entry and, per family, in one entry of the request;
//   - cni-args: a JSON object of at most 4096 bytes;
//   - portMappings: at most 64; ports 1 to 65535; protocol tcp, udp or sctp
//     in any case, or empty for tcp; hostIP empty or an IP address; no two
//     with the same hostPort, protocol and hostIP;
//   - bandwidth: no negative value; per direction, rate and burst both set
//     or both zero, and a burst under 4 GiB (the bandwidth plugin's rules).
//
// The error joins every problem it has room for, each naming the entry,
// e.g.
//
//	networks[2] ("Bad_Name"): name must be a DNS-1123 label: ...
//	networks[3] ("blue"): ips[0] "10.0.0.5": needs a prefix length, e.g. "10.0.0.5/24"
//
// and is at most MaxErrorLen bytes, with user-supplied text quoted short.
// Validate does not modify reqs and returns nil for an empty list.
func Validate(reqs []Request) error {
	var p problems
	if len(reqs) > MaxNetworks {
		p.add(fmt.Errorf("networks: %d entries, at most %d allowed", len(reqs), MaxNetworks))
	}
	v := newValidator(reqs)
	for i := 0; i < len(reqs) && !p.full(); i++ {
		v.check(entry{p: &p, i: i, r: &reqs[i]})
	}
	return BoundError(p.err())
}

// entry is one entry of a request being validated.
type entry struct {
	p *problems
	i int
	r *Request
}

// addf records a problem of the entry.
func (e entry) addf(format string, args ...any) {
	e.p.addf(e.i, e.r.Name, format, args...)
}

// validator checks the entries of a request in order, remembering what
// later entries must not repeat.
type validator struct {
	reqs []Request
	// names and ifnames index the entries checked so far by name and
	// interface, for long lists only: short ones (the only valid ones) are
	// scanned, and a hostile one stays linear.
	names, ifnames map[string]int
	// gateway is, per IP family (0 IPv4, 1 IPv6), 1 + the index of the
	// entry that has the default route, 0 if none has.
	gateway [2]int
}

// newValidator returns a validator for reqs.
func newValidator(reqs []Request) *validator {
	v := &validator{reqs: reqs}
	if len(reqs) > MaxNetworks {
		v.names, v.ifnames = make(map[string]int, len(reqs)), make(map[string]int, len(reqs))
	}
	return v
}

// check checks one entry, after those before it.
func (v *validator) check(e entry) {
	v.checkNameUnique(e)
	v.checkInterfaceUnique(e)
	checkIPs(e)
	checkEntryMAC(e)
	v.checkDefaultRoute(e)
	checkCNIArgs(e)
	checkPortMappings(e)
	checkBandwidth(e)
}

// checkNameUnique checks the entry's name, and that no entry before has it.
func (v *validator) checkNameUnique(e entry) {
	if msg := checkName(e.r.Name); msg != "" {
		e.addf("%s", msg)
	} else if j := earlier(v.reqs, e.i, e.r.Name, v.names, func(r *Request) string { return r.Name }); j >= 0 {
		e.addf("duplicate name, also networks[%d]", j)
	}
}

// checkInterfaceUnique checks the entry's interface, when set, and that no
// entry before has it.
func (v *validator) checkInterfaceUnique(e entry) {
	if e.r.Interface == "" {
		return
	}
	if msg := checkInterface(e.r.Interface); msg != "" {
		e.addf("interface %s: %s", quote(e.r.Interface), msg)
	} else if j := earlier(v.reqs, e.i, e.r.Interface, v.ifnames, func(r *Request) string { return r.Interface }); j >= 0 {
		e.addf("interface %s is also used by networks[%d]", quote(e.r.Interface), j)
	}
}

// checkEntryMAC checks the entry's MAC, when set.
func checkEntryMAC(e entry) {
	if e.r.MAC == "" {
		return
	}
	if msg := checkMAC(e.r.MAC); msg != "" {
		e.addf("mac %s: %s", quote(e.r.MAC), msg)
	}
}

// checkIPs checks the entry's static addresses. The static IPAM plugin
// refuses an address without a prefix length only once the sandbox
// exists; refusing it here says so before.
func checkIPs(e entry) {
	ips := e.r.IPs
	if len(ips) > maxIPs {
		e.addf("ips: %d addresses, at most %d allowed", len(ips), maxIPs)
		return
	}
	var seen [maxIPs]netip.Addr // the zero Addr, for a bad one, matches none
	for k, s := range ips {
		addr, msg := cidrAddress(s)
		if msg != "" {
			e.addf("ips[%d] %s: %s", k, quote(s), msg)
			continue
		}
		if j := slices.Index(seen[:k], addr); j >= 0 {
			e.addf("ips[%d] %s: same address as ips[%d]", k, quote(s), j)
		}
		seen[k] = addr
	}
}

// cidrAddress returns the address of s, an address in CIDR form as
// net.ParseCIDR (and so the static IPAM plugin) reads it, or what is wrong
// with s.
func cidrAddress(s string) (netip.Addr, string) {
	if ip, _, err := net.ParseCIDR(s); err == nil {
		addr, _ := netip.AddrFromSlice(ip)
		return addr.Unmap(), ""
	}
	if ip := net.ParseIP(s); ip != nil {
		return netip.Addr{}, fmt.Sprintf("needs a prefix length, e.g. %q", s+examplePrefix(ip))
	}
	return netip.Addr{}, `not an IP address in CIDR form (address/prefix), e.g. "10.0.0.5/24"`
}

// examplePrefix is a common prefix length for ip's family, for messages.
func examplePrefix(ip net.IP) string {
	if ip.To4() != nil {
		return "/24"
	}
	return "/64"
}

// checkDefaultRoute checks the entry's gateways: one default route per
// family, so one gateway per family in the entry and one entry per family
// in the request.
func (v *validator) checkDefaultRoute(e entry) {
	gws := e.r.DefaultRoute
	if len(gws) > len(v.gateway) {
		e.addf("default-route: %d addresses, at most one per IP family", len(gws))
		return
	}
	var own [2]int // per family, 1 + the index in gws of the entry's gateway
	for k, s := range gws {
		fam, msg := gatewayFamily(s)
		switch {
		case msg != "":
			e.addf("default-route[%d] %s: %s", k, quote(s), msg)
		case own[fam] != 0:
			e.addf("default-route[%d] %s: a second %s gateway, after default-route[%d]", k, quote(s), familyName(fam), own[fam]-1)
		case v.gateway[fam] != 0:
			j := v.gateway[fam] - 1
			e.addf("default-route[%d] %s: %s asks for the %s default route too", k, quote(s), label(j, v.reqs[j].Name), familyName(fam))
		default:
			own[fam], v.gateway[fam] = k+1, e.i+1
		}
	}
}

// gatewayFamily returns the IP family of s (0 IPv4, 1 IPv6), an address
// without prefix length, or what is wrong with s.
func gatewayFamily(s string) (int, string) {
	ip := net.ParseIP(s)
	if ip == nil {
		if addr, _, found := strings.Cut(s, "/"); found && net.ParseIP(addr) != nil {
			return 0, fmt.Sprintf("a gateway takes no prefix length, e.g. %q", addr)
		}
		return 0, "not an IP address"
	}
	if ip.To4() != nil {
		return 0, ""
	}
	return 1, ""
}

// familyName names IP family fam in messages.
func familyName(fam int) string {
	if fam == 0 {
		return "IPv4"
	}
	return "IPv6"
}

// checkCNIArgs checks the entry's cni-args: a JSON object, which the proxy
// merges into every plugin config's args.cni, small enough for a config.
// JSON from the annotation is well-formed already; other sources' may not be.
func checkCNIArgs(e entry) {
	a := e.r.CNIArgs
	switch {
	case len(a) == 0:
	case len(a) > maxCNIArgsLen:
		e.addf("cni-args: %d bytes, at most %d allowed", len(a), maxCNIArgsLen)
	case !json.Valid(a):
		e.addf("cni-args: not valid JSON")
	default:
		if kind := jsonKind(a); kind != "an object" {
			e.addf("cni-args: must be a JSON object, got %s", kind)
		}
	}
}

// jsonKind names the kind of a, a valid JSON value.
func jsonKind(a json.RawMessage) string {
	switch bytes.TrimLeft(a, " \t\r\n")[0] {
	case '{':
		return "an object"
	case '[':
		return "a list"
	case '"':
		return "a string"
	case 'n':
		return "null"
	case 't', 'f':
		return "a boolean"
	}
	return "a number"
}

// checkPortMappings checks the entry's port mappings as the portmap plugin
// reads them: it turns each into iptables or nftables rules, taking the
// protocol as given (iptables in any case), and only checks that ports are
// positive (plugins/meta/portmap/main.go, parseConfig).
func checkPortMappings(e entry) {
	pms := e.r.PortMappings
	if len(pms) > maxPortMappings {
		e.addf("portMappings: %d entries, at most %d allowed", len(pms), maxPortMappings)
		return
	}
	for k := range pms {
		if !checkPortMapping(e, k, &pms[k]) {
			continue
		}
		if j := slices.IndexFunc(pms[:k], func(o PortMapping) bool { return sameHostPort(&o, &pms[k]) }); j >= 0 {
			e.addf("portMappings[%d]: %s is also mapped by portMappings[%d]", k, hostPortName(&pms[k]), j)
		}
	}
}

// checkPortMapping checks the fields of one port mapping, reporting whether
// they are valid.
func checkPortMapping(e entry, k int, pm *PortMapping) bool {
	ok := true
	bad := func(format string, args ...any) {
		e.addf("portMappings[%d]: "+format, append([]any{k}, args...)...)
		ok = false
	}
	if !validPort(pm.HostPort) {
		bad("hostPort %d: must be 1 to 65535", pm.HostPort)
	}
	if !validPort(pm.ContainerPort) {
		bad("containerPort %d: must be 1 to 65535", pm.ContainerPort)
	}
	if !slices.Contains([]string{"tcp", "udp", "sctp"}, protocol(pm)) {
		bad("protocol %s: must be tcp, udp or sctp (any case), or empty for tcp", quote(pm.Protocol))
	}
	if pm.HostIP != "" && net.ParseIP(pm.HostIP) == nil {
		bad("hostIP %s: not an IP address", quote(pm.HostIP))
	}
	return ok
}

func validPort(p int32) bool { return p >= 1 && p <= math.MaxUint16 }

// protocol returns pm's protocol in lower case, tcp when empty.
func protocol(pm *PortMapping) string {
	return strings.ToLower(cmp.Or(pm.Protocol, "tcp"))
}

// sameHostPort reports whether valid port mappings a and b map the same
// host port: the same port, protocol and host address.
func sameHostPort(a, b *PortMapping) bool {
	return a.HostPort == b.HostPort && protocol(a) == protocol(b) && sameHostIP(a.HostIP, b.HostIP)
}

// sameHostIP reports whether a and b, empty or IP addresses, are the same:
// both empty, or the same address however written.
func sameHostIP(a, b string) bool {
	if a == "" || b == "" {
		return a == b
	}
	return net.ParseIP(a).Equal(net.ParseIP(b))
}

// hostPortName names the host port pm maps, e.g. 8080/tcp on "10.0.0.1".
func hostPortName(pm *PortMapping) string {
	s := fmt.Sprintf("hostPort %d/%s", pm.HostPort, protocol(pm))
	if pm.HostIP != "" {
		s += " on hostIP " + quote(pm.HostIP)
	}
	return s
}

// checkBandwidth applies the bandwidth plugin's rules
// (plugins/meta/bandwidth/main.go, validateRateAndBurst) to each direction;
// the plugin reads the values as unsigned, so negative ones are refused
// too.
func checkBandwidth(e entry) {
	if bw := e.r.Bandwidth; bw != nil {
		checkDirection(e, "ingress", bw.IngressRate, bw.IngressBurst)
		checkDirection(e, "egress", bw.EgressRate, bw.EgressBurst)
	}
}

// checkDirection checks the rate and burst of one direction (dir is
// "ingress" or "egress").
func checkDirection(e entry, dir string, rate, burst int64) {
	switch {
	case rate < 0 || burst < 0:
		e.addf("bandwidth: %sRate %d and %sBurst %d: must not be negative", dir, rate, dir, burst)
	case rate != 0 && burst == 0:
		e.addf("bandwidth: %sRate is set, so %sBurst must be too", dir, dir)
	case rate == 0 && burst != 0:
		e.addf("bandwidth: %sBurst is set, so %sRate must be too", dir, dir)
	case burst > maxBurst:
		e.addf("bandwidth: %sBurst %d: must be under 4 GiB (%d bits)", dir, burst, int64(maxBurst)+1)
	}
}

// label names entry i of a request or node list in errors.
func label(i int, name string) string {
	return fmt.Sprintf("networks[%d] (%s)", i, quote(name))
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
	switch {
	case name == "":
		return "name is required"
	case len(name) > validation.DNS1123LabelMaxLength:
		// Its length alone: matching the pattern would scan all of a
		// hostile name, twice.
		return "name must be a DNS-1123 label: " + validation.MaxLenError(validation.DNS1123LabelMaxLength)
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
