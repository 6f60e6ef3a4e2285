package netrequest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// entryWith returns a JSON request for network "a" with the given extra
// keys, e.g. entryWith(`"ips":["10.0.0.5/24"]`).
func entryWith(keys string) string {
	return `[{"name":"a",` + keys + `}]`
}

// jsonList returns the JSON list of n copies of elem, elem's %d replaced by
// the index.
func jsonList(n int, elem string) string {
	items := make([]string, n)
	for i := range items {
		items[i] = fmt.Sprintf(elem, i)
	}
	return "[" + strings.Join(items, ",") + "]"
}

func TestParseIPs(t *testing.T) {
	for _, tc := range []struct {
		name, keys string
		want       []string // IPs of the request; nil when an error is wanted
		err        []string
	}{
		{"v4 and v6", `"ips":["10.0.0.5/24","2001:db8::5/64"]`, []string{"10.0.0.5/24", "2001:db8::5/64"}, nil},
		{"host prefix", `"ips":["10.0.0.5/32"]`, []string{"10.0.0.5/32"}, nil},
		{"sixteen", `"ips":` + jsonList(16, `"10.0.0.%d/24"`), nil, nil},
		{"bare v4", `"ips":["10.0.0.5"]`, nil, []string{`networks[0] ("a"): ips[0] "10.0.0.5": needs a prefix length, e.g. "10.0.0.5/24"`}},
		{"bare v6", `"ips":["10.0.0.5/24","2001:db8::5"]`, nil, []string{`networks[0] ("a"): ips[1] "2001:db8::5": needs a prefix length, e.g. "2001:db8::5/64"`}},
		{"not an address", `"ips":["blue/24"]`, nil, []string{`ips[0] "blue/24": not an IP address in CIDR form (address/prefix), e.g. "10.0.0.5/24"`}},
		{"bad prefix", `"ips":["10.0.0.5/33"]`, nil, []string{`ips[0] "10.0.0.5/33": not an IP address in CIDR form`}},
		{"zone", `"ips":["fe80::1%eth0/64"]`, nil, []string{`ips[0] "fe80::1%eth0/64": not an IP address in CIDR form`}},
		{"duplicate", `"ips":["10.0.0.5/24","10.0.0.6/24","10.0.0.5/16"]`, nil, []string{`networks[0] ("a"): ips[2] "10.0.0.5/16": same address as ips[0]`}},
		{"duplicate mapped", `"ips":["10.0.0.5/24","::ffff:10.0.0.5/120"]`, nil, []string{`ips[1] "::ffff:10.0.0.5/120": same address as ips[0]`}},
		{"seventeen", `"ips":` + jsonList(17, `"10.0.0.%d/24"`), nil, []string{`networks[0] ("a"): ips: 17 addresses, at most 16 allowed`}},
		{"empty", `"ips":[]`, nil, []string{`networks[0] ("a"): "ips" must not be empty: omit the key instead`}},
		{"wrong type", `"ips":"10.0.0.5/24"`, nil, []string{`networks[0] ("a"): key "ips": want a list, got a string`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []Request
			if tc.want != nil {
				want = []Request{{Name: "a", Interface: "net1", IPs: tc.want}}
			}
			checkParse(t, entryWith(tc.keys), want, tc.err)
		})
	}
}

func TestParseDefaultRoute(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        [][]string // DefaultRoute of each request; nil when an error is wanted
		err         []string
	}{
		{"one per family", entryWith(`"default-route":["10.0.0.1","2001:db8::1"]`), [][]string{{"10.0.0.1", "2001:db8::1"}}, nil},
		{"families in two entries", `[{"name":"a","default-route":["10.0.0.1"]},{"name":"b","default-route":["fe80::1"]}]`, [][]string{{"10.0.0.1"}, {"fe80::1"}}, nil},
		{"prefix", entryWith(`"default-route":["10.0.0.1/24"]`), nil, []string{`networks[0] ("a"): default-route[0] "10.0.0.1/24": a gateway takes no prefix length, e.g. "10.0.0.1"`}},
		{"not an address", entryWith(`"default-route":["gw"]`), nil, []string{`default-route[0] "gw": not an IP address`}},
		{"not an address with slash", entryWith(`"default-route":["gw/24"]`), nil, []string{`default-route[0] "gw/24": not an IP address`}},
		{"two IPv4", entryWith(`"default-route":["10.0.0.1","10.0.0.2"]`), nil, []string{`networks[0] ("a"): default-route[1] "10.0.0.2": a second IPv4 gateway, after default-route[0]`}},
		{"two IPv6", entryWith(`"default-route":["2001:db8::1","2001:db8::2"]`), nil, []string{`default-route[1] "2001:db8::2": a second IPv6 gateway, after default-route[0]`}},
		{"mapped is IPv4", entryWith(`"default-route":["10.0.0.1","::ffff:10.0.0.2"]`), nil, []string{`a second IPv4 gateway`}},
		{"three", entryWith(`"default-route":["10.0.0.1","2001:db8::1","10.0.0.2"]`), nil, []string{`networks[0] ("a"): default-route: 3 addresses, at most one per IP family`}},
		{"two entries", `[{"name":"a","default-route":["10.0.0.1"]},{"name":"b"},{"name":"c","default-route":["2001:db8::1","10.0.1.1"]}]`, nil,
			[]string{`networks[2] ("c"): default-route[1] "10.0.1.1": networks[0] ("a") asks for the IPv4 default route too`}},
		{"empty", entryWith(`"default-route":[]`), nil, []string{`"default-route" must not be empty`}},
		{"wrong type", entryWith(`"default-route":"10.0.0.1"`), nil, []string{`key "default-route": want a list, got a string`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []Request
			for i, gws := range tc.want {
				want = append(want, Request{Name: string(rune('a' + i)), Interface: fmt.Sprintf("net%d", i+1), DefaultRoute: gws})
			}
			checkParse(t, tc.value, want, tc.err)
		})
	}
}

func TestParseCNIArgs(t *testing.T) {
	big := `{"k":"` + strings.Repeat("x", maxCNIArgsLen) + `"}`
	for _, tc := range []struct {
		name, args string
		want       string // CNIArgs as parsed; "" when an error is wanted
		err        []string
	}{
		{"object", `{"a":"b","n":{"x":[1,2.5,null]}}`, `{"a":"b","n":{"x":[1,2.5,null]}}`, nil},
		{"empty object", `{}`, `{}`, nil},
		{"compacted", "{ \"a\" :\n\t\"b\" }", `{"a":"b"}`, nil},
		{"escaped as Marshal does", `{"a":"<b>"}`, `{"a":"\u003cb\u003e"}`, nil},
		{"keys are opaque", `{"A":1,"A":2}`, `{"A":1,"A":2}`, nil},
		{"fits", `{"k":"` + strings.Repeat("x", maxCNIArgsLen-8) + `"}`, `{"k":"` + strings.Repeat("x", maxCNIArgsLen-8) + `"}`, nil},
		{"null", `null`, "", []string{`networks[0] ("a"): cni-args: must be a JSON object, got null`}},
		{"list", `[{"a":"b"}]`, "", []string{`cni-args: must be a JSON object, got a list`}},
		{"string", `"a=b"`, "", []string{`cni-args: must be a JSON object, got a string`}},
		{"number", `1`, "", []string{`cni-args: must be a JSON object, got a number`}},
		{"boolean", `true`, "", []string{`cni-args: must be a JSON object, got a boolean`}},
		{"too large", big, "", []string{fmt.Sprintf(`networks[0] ("a"): cni-args: %d bytes, at most 4096 allowed`, len(big))}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []Request
			if tc.want != "" {
				want = []Request{{Name: "a", Interface: "net1", CNIArgs: json.RawMessage(tc.want)}}
			}
			checkParse(t, entryWith(`"cni-args":`+tc.args), want, tc.err)
		})
	}
}

func TestParsePortMappings(t *testing.T) {
	for _, tc := range []struct {
		name, mappings string
		want           []PortMapping // nil when an error is wanted
		err            []string
	}{
		{"one", `[{"hostPort":8080,"containerPort":80}]`, []PortMapping{{HostPort: 8080, ContainerPort: 80}}, nil},
		{"every field", `[{"hostPort":1,"containerPort":65535,"protocol":"sctp","hostIP":"2001:db8::1"}]`,
			[]PortMapping{{HostPort: 1, ContainerPort: 65535, Protocol: "sctp", HostIP: "2001:db8::1"}}, nil},
		{"same port, other protocol or host address",
			`[{"hostPort":53,"containerPort":53},{"hostPort":53,"containerPort":53,"protocol":"UDP"},{"hostPort":53,"containerPort":53,"hostIP":"10.0.0.1"},{"hostPort":53,"containerPort":53,"hostIP":"10.0.0.2"}]`,
			[]PortMapping{{HostPort: 53, ContainerPort: 53}, {HostPort: 53, ContainerPort: 53, Protocol: "UDP"}, {HostPort: 53, ContainerPort: 53, HostIP: "10.0.0.1"}, {HostPort: 53, ContainerPort: 53, HostIP: "10.0.0.2"}}, nil},
		{"sixty-four", jsonList(64, `{"hostPort":1%d,"containerPort":80}`), nil, nil},
		{"zero port", `[{"hostPort":0,"containerPort":80}]`, nil, []string{`networks[0] ("a"): portMappings[0]: hostPort 0: must be 1 to 65535`}},
		{"negative port", `[{"hostPort":80,"containerPort":-1}]`, nil, []string{`portMappings[0]: containerPort -1: must be 1 to 65535`}},
		{"port too large", `[{"hostPort":65536,"containerPort":80}]`, nil, []string{`portMappings[0]: hostPort 65536: must be 1 to 65535`}},
		{"missing ports", `[null]`, nil, []string{`portMappings[0]: hostPort 0: must be 1 to 65535`, `portMappings[0]: containerPort 0: must be 1 to 65535`}},
		{"protocol", `[{"hostPort":80,"containerPort":80,"protocol":"icmp"}]`, nil,
			[]string{`networks[0] ("a"): portMappings[0]: protocol "icmp": must be tcp, udp or sctp (any case), or empty for tcp`}},
		{"host address", `[{"hostPort":80,"containerPort":80,"hostIP":"localhost"}]`, nil, []string{`portMappings[0]: hostIP "localhost": not an IP address`}},
		{"host prefix", `[{"hostPort":80,"containerPort":80,"hostIP":"10.0.0.1/24"}]`, nil, []string{`portMappings[0]: hostIP "10.0.0.1/24": not an IP address`}},
		{"duplicate, empty protocol is tcp", `[{"hostPort":80,"containerPort":80},{"hostPort":80,"containerPort":81,"protocol":"TCP"}]`, nil,
			[]string{`networks[0] ("a"): portMappings[1]: hostPort 80/tcp is also mapped by portMappings[0]`}},
		{"duplicate host address", `[{"hostPort":80,"containerPort":80,"hostIP":"10.0.0.1"},{"hostPort":80,"containerPort":81,"hostIP":"::ffff:10.0.0.1"}]`, nil,
			[]string{`portMappings[1]: hostPort 80/tcp on hostIP "::ffff:10.0.0.1" is also mapped by portMappings[0]`}},
		{"sixty-five", jsonList(65, `{"hostPort":%d,"containerPort":80}`), nil, []string{`networks[0] ("a"): portMappings: 65 entries, at most 64 allowed`}},
		{"empty", `[]`, nil, []string{`"portMappings" must not be empty`}},
		{"unknown key", `[{"hostPort":80,"containerPort":80},{"hostPort":81,"containerPort":80,"hostport":82}]`, nil,
			[]string{`networks[0] ("a"): unknown key "portMappings[1].hostport"`}},
		{"duplicate key", `[{"hostPort":80,"containerPort":80,"protocol":"tcp","protocol":"udp"}]`, nil, []string{`networks[0] ("a"): duplicate key "portMappings[0].protocol"`}},
		{"string port", `[{"hostPort":"80","containerPort":80}]`, nil, []string{`networks[0] ("a"): key "portMappings.hostPort": want a 32-bit integer, got a string`}},
		{"port overflow", `[{"hostPort":99999999999,"containerPort":80}]`, nil, []string{`key "portMappings.hostPort": want a 32-bit integer, got a number`}},
		{"fractional port", `[{"hostPort":80.5,"containerPort":80}]`, nil, []string{`key "portMappings.hostPort": want a 32-bit integer, got a number`}},
		{"not a list", `{"hostPort":80,"containerPort":80}`, nil, []string{`key "portMappings": want a list, got an object`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []Request
			if tc.want != nil {
				want = []Request{{Name: "a", Interface: "net1", PortMappings: tc.want}}
			}
			checkParse(t, entryWith(`"portMappings":`+tc.mappings), want, tc.err)
		})
	}
}

func TestParseBandwidth(t *testing.T) {
	for _, tc := range []struct {
		name, bandwidth string
		want            *Bandwidth // nil when an error is wanted
		err             []string
	}{
		{"both directions", `{"ingressRate":1000000,"ingressBurst":80000,"egressRate":2000000,"egressBurst":160000}`,
			&Bandwidth{IngressRate: 1000000, IngressBurst: 80000, EgressRate: 2000000, EgressBurst: 160000}, nil},
		{"one direction", `{"egressRate":2000000,"egressBurst":160000,"ingressRate":0}`, &Bandwidth{EgressRate: 2000000, EgressBurst: 160000}, nil},
		{"no limit", `{}`, &Bandwidth{}, nil},
		{"largest burst", `{"ingressRate":1,"ingressBurst":34359738359}`, &Bandwidth{IngressRate: 1, IngressBurst: 34359738359}, nil},
		{"rate without burst", `{"ingressRate":1000}`, nil, []string{`networks[0] ("a"): bandwidth: ingressRate is set, so ingressBurst must be too`}},
		{"burst without rate", `{"egressBurst":1000}`, nil, []string{`networks[0] ("a"): bandwidth: egressBurst is set, so egressRate must be too`}},
		{"negative", `{"ingressRate":-1,"ingressBurst":10,"egressRate":10,"egressBurst":-5}`, nil,
			[]string{`bandwidth: ingressRate -1 and ingressBurst 10: must not be negative`, `bandwidth: egressRate 10 and egressBurst -5: must not be negative`}},
		{"burst of 4 GiB", `{"egressRate":1,"egressBurst":34359738360}`, nil, []string{`bandwidth: egressBurst 34359738360: must be under 4 GiB (34359738360 bits)`}},
		{"unknown key", `{"ingressrate":1}`, nil, []string{`networks[0] ("a"): unknown key "bandwidth.ingressrate"`}},
		{"duplicate key", `{"ingressRate":1,"ingressBurst":1,"ingressRate":2}`, nil, []string{`networks[0] ("a"): duplicate key "bandwidth.ingressRate"`}},
		{"overflow", `{"ingressRate":9223372036854775808,"ingressBurst":1}`, nil, []string{`key "bandwidth.ingressRate": want a 64-bit integer, got a number`}},
		{"not an object", `[1]`, nil, []string{`key "bandwidth": want an object, got a list`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []Request
			if tc.want != nil {
				want = []Request{{Name: "a", Interface: "net1", Bandwidth: tc.want}}
			}
			checkParse(t, entryWith(`"bandwidth":`+tc.bandwidth), want, tc.err)
		})
	}
}

// An NPWG-style request, as people write it: every key, indented.
func TestParseEveryKey(t *testing.T) {
	value := `
[
  {
    "name": "blue",
    "interface": "data0",
    "ips": [ "10.1.1.11/24", "2001:db8:1::11/64" ],
    "mac": "c2:b0:57:49:47:f1",
    "default-route": [ "10.1.1.1" ],
    "cni-args": {
      "foo": "bar",
      "n": 1
    },
    "portMappings": [
      { "hostPort": 8080, "containerPort": 80, "protocol": "tcp" },
      { "hostPort": 5353, "containerPort": 53, "protocol": "UDP", "hostIP": "192.0.2.1" }
    ],
    "bandwidth": {
      "ingressRate": 2048, "ingressBurst": 1600,
      "egressRate": 4096, "egressBurst": 1600
    }
  },
  {
    "name": "red",
    "default-route": [ "2001:db8:2::1" ]
  }
]
`
	want := []Request{{
		Name: "blue", Interface: "data0", IPs: []string{"10.1.1.11/24", "2001:db8:1::11/64"}, MAC: "c2:b0:57:49:47:f1",
		DefaultRoute: []string{"10.1.1.1"}, CNIArgs: json.RawMessage(`{"foo":"bar","n":1}`),
		PortMappings: []PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}, {HostPort: 5353, ContainerPort: 53, Protocol: "UDP", HostIP: "192.0.2.1"}},
		Bandwidth:    &Bandwidth{IngressRate: 2048, IngressBurst: 1600, EgressRate: 4096, EgressBurst: 1600},
	}, {Name: "red", Interface: "net1", DefaultRoute: []string{"2001:db8:2::1"}}}
	checkParse(t, value, want, nil)
	got, _ := Parse(value)
	if caps := got[0].Capabilities(); !reflect.DeepEqual(caps, []string{"ips", "mac", "portMappings", "bandwidth"}) {
		t.Errorf("Capabilities = %q", caps)
	}
	if caps := got[1].Capabilities(); caps != nil {
		t.Errorf("Capabilities of a request without them = %q", caps)
	}
	// Every problem of every key, each naming its entry and key.
	bad := `[{"name":"blue","ips":["10.0.0.5"],"default-route":["10.0.0.1/8"],"cni-args":[],
	  "portMappings":[{"hostPort":0,"containerPort":80,"protocol":"gre"}],"bandwidth":{"ingressRate":1}}]`
	checkParse(t, bad, nil, []string{
		`networks[0] ("blue"): ips[0] "10.0.0.5": needs a prefix length`,
		`networks[0] ("blue"): default-route[0] "10.0.0.1/8": a gateway takes no prefix length`,
		`networks[0] ("blue"): cni-args: must be a JSON object, got a list`,
		`networks[0] ("blue"): portMappings[0]: hostPort 0`,
		`networks[0] ("blue"): portMappings[0]: protocol "gre"`,
		`networks[0] ("blue"): bandwidth: ingressRate is set`,
	})
}

// Requests built directly (the native CRI field) get the same rules, and
// the checks JSON decoding does for the annotation.
func TestValidateKeys(t *testing.T) {
	for _, tc := range []struct {
		name string
		r    Request
		err  string // "" valid
	}{
		{"cni-args with spaces", Request{Name: "a", CNIArgs: json.RawMessage(" \n{ \"a\": 1 } ")}, ""},
		{"cni-args not JSON", Request{Name: "a", CNIArgs: json.RawMessage(`{"a":`)}, `networks[0] ("a"): cni-args: not valid JSON`},
		{"cni-args too large", Request{Name: "a", CNIArgs: json.RawMessage(strings.Repeat(" ", 1<<20))}, `cni-args: 1048576 bytes, at most 4096 allowed`},
		{"protocol any case", Request{Name: "a", PortMappings: []PortMapping{{HostPort: 1, ContainerPort: 1, Protocol: "Sctp"}}}, ""},
		{"negative port", Request{Name: "a", PortMappings: []PortMapping{{HostPort: -80, ContainerPort: 1}}}, `portMappings[0]: hostPort -80: must be 1 to 65535`},
		{"ips not unique", Request{Name: "a", IPs: []string{"2001:db8::1/64", "2001:DB8::1/128"}}, `ips[1] "2001:DB8::1/128": same address as ips[0]`},
		{"empty lists", Request{Name: "a", IPs: []string{}, DefaultRoute: []string{}, PortMappings: []PortMapping{}}, ""},
	} {
		err := Validate([]Request{tc.r})
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want one containing %q", tc.name, err, tc.err)
		}
	}
}
