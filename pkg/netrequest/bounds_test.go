package netrequest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Hostile requests must get short errors that still say what is wrong, and
// fast: 256 KiB is the apiserver's limit on a pod's annotations together,
// 1 MiB stands for what a CRI message can carry.
const (
	maxAnnotation = 256 << 10
	maxNative     = 1 << 20
)

// slowLimit is far above what a linear check of these inputs takes (a few
// ms), and far below what a quadratic one would: it catches the latter
// without timing anything finely.
const slowLimit = 5 * time.Second

// fill repeats unit, with i of fmt's %d replaced by the repetition's index,
// until the result is about n bytes long, and wraps it in before and after.
func fill(before, unit, after string, n int) string {
	var b strings.Builder
	b.WriteString(before)
	for i := 0; b.Len() < n-len(after); i++ {
		if strings.Contains(unit, "%d") {
			fmt.Fprintf(&b, unit, i)
		} else {
			b.WriteString(unit)
		}
	}
	b.WriteString(after)
	return b.String()
}

// checkBounded checks that err is a short error, valid UTF-8 (gRPC statuses
// need it), containing each of want, and that it came fast.
func checkBounded(t *testing.T, err error, took time.Duration, want ...string) {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if len(msg) > MaxErrorLen {
		t.Errorf("error of %d bytes, more than %d: %.200q...", len(msg), MaxErrorLen, msg)
	}
	if !utf8.ValidString(msg) {
		t.Errorf("error is not valid UTF-8: %.200q", msg)
	}
	for _, s := range want {
		if !strings.Contains(msg, s) {
			t.Errorf("error %q does not contain %q", msg, s)
		}
	}
	if took > slowLimit {
		t.Errorf("took %v", took)
	}
}

func TestHostileAnnotation(t *testing.T) {
	n := maxAnnotation
	for _, tc := range []struct {
		name, value string
		want        []string
	}{
		{"huge name", strings.Repeat("a", n), []string{`networks[0] ("aaaa`, `(262144 bytes)`, "name must be a DNS-1123 label"}},
		{"huge bad name", strings.Repeat("A_", n/2), []string{`networks[0] ("A_A_`, "name must be a DNS-1123 label"}},
		{"huge non-UTF-8 name", strings.Repeat("\xff", n), []string{`networks[0] ("\xff\xff`, "name must be a DNS-1123 label"}},
		{"huge interface", "blue@" + strings.Repeat("x", n), []string{`networks[0] ("blue"): interface "xxxx`, "must be 1 to 15 bytes long"}},
		{"huge namespace", strings.Repeat("n", n/2) + "/" + strings.Repeat("b", n/2), []string{`networks[0] ("nnnn`, `networks are node-level and have no namespace: use "bbbb`}},
		{"thousands of entries", fill("", "n%d,", "x", n), []string{"networks: 3", "entries, at most 16 allowed"}},
		{"thousands of duplicates", fill("", "a,", "a", n), []string{"entries, at most 16 allowed", `networks[1] ("a"): duplicate name, also networks[0]`, moreProblems}},
		{"thousands of bad entries", fill("", "Bad_%d,", "x", n), []string{`networks[0] ("Bad_0"): name must be a DNS-1123 label`, moreProblems}},
		{"thousands of empty entries", strings.Repeat(",", n), []string{`networks[0] (""): empty entry`, `networks[1] (""): empty entry`, moreProblems}},
		{"thousands of namespaces", fill("", "ns/b%d,", "x", n), []string{`networks[0] ("ns/b0"): networks are node-level`, moreProblems}},
		{"JSON huge name", `[{"name":"` + strings.Repeat("a", n) + `"}]`, []string{`networks[0] ("aaaa`, "name must be a DNS-1123 label"}},
		{"JSON huge unknown key", `[{"name":"a","` + strings.Repeat("k", n) + `":1}]`, []string{`networks[0] ("a"): unknown key "kkkk`, `(262144 bytes)`}},
		{"JSON huge nested key", `[{"name":"a","bandwidth":{"` + strings.Repeat("k", n) + `":1}}]`, []string{`networks[0] ("a"): unknown key "bandwidth.kkkk`}},
		{"JSON many unknown keys", fill(`[{"name":"a"`, `,"k%d":1`, `}]`, n), []string{`networks[0] ("a"): unknown key "k0"`, moreProblems}},
		{"JSON garbage", "[" + strings.Repeat("x", n), []string{`networks[0] (""): invalid JSON: invalid character 'x'`}},
		{"JSON unterminated string", `[{"name":"` + strings.Repeat("a", n), []string{`networks[0] (""): invalid JSON: unexpected EOF`}},
		{"JSON deep nesting", strings.Repeat("[", n), []string{`networks[0] (""): invalid JSON: `, "exceeded max depth"}},
		{"JSON deep nesting in a key", `[{"name":"a","cni-args":{"a":` + strings.Repeat("[", n), []string{"invalid JSON"}},
		{"JSON deep nesting in cni-args", `[{"name":"a","cni-args":{"a":` + strings.Repeat("[", 9000) + strings.Repeat("]", 9000) + "}}]",
			[]string{`networks[0] ("a"): cni-args: `, "bytes, at most 4096 allowed"}},
		{"JSON huge cni-args", `[{"name":"a","cni-args":{"k":"` + strings.Repeat("x", n) + `"}}]`, []string{`networks[0] ("a"): cni-args: 262152 bytes, at most 4096 allowed`}},
		{"JSON huge number", `[{"name":"a","portMappings":[{"hostPort":` + strings.Repeat("9", n) + `,"containerPort":1}]}]`,
			[]string{`networks[0] ("a"): key "portMappings.hostPort": want a 32-bit integer, got a number`}},
		{"JSON thousands of entries", fill("[", `{"name":"n%d"},`, `{"name":"x"}]`, n), []string{"entries, at most 16 allowed"}},
		{"JSON thousands of bad entries", fill("[", `{"name":"N%d","mac":"x"},`, `{"name":"x"}]`, n), []string{`networks[0] ("N0"): name must be`, `networks[0] ("N0"): mac "x"`, moreProblems}},
		{"JSON thousands of ips", fill(`[{"name":"a","ips":[`, `"10.0.0.1/24",`, `"10.0.0.1/24"]}]`, n), []string{`networks[0] ("a"): ips: `, "addresses, at most 16 allowed"}},
		{"JSON huge ip", `[{"name":"a","ips":["` + strings.Repeat("1", n) + `"]}]`, []string{`networks[0] ("a"): ips[0] "1111`, "not an IP address in CIDR form"}},
		{"JSON thousands of port mappings", fill(`[{"name":"a","portMappings":[`, `{"hostPort":1,"containerPort":1},`, `{}]}]`, n), []string{"portMappings: ", "entries, at most 64 allowed"}},
		{"JSON thousands of gateways", fill(`[{"name":"a","default-route":[`, `"10.0.0.1",`, `"10.0.0.1"]}]`, n), []string{"default-route: ", "addresses, at most one per IP family"}},
		{"JSON huge protocol", `[{"name":"a","portMappings":[{"hostPort":1,"containerPort":1,"protocol":"` + strings.Repeat("p", n) + `"}]}]`,
			[]string{`portMappings[0]: protocol "pppp`, "must be tcp, udp or sctp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := Parse(tc.value)
			checkBounded(t, err, time.Since(start), tc.want...)
		})
	}
}

func TestHostileNativeRequest(t *testing.T) {
	n := maxNative
	huge := strings.Repeat("x", n)
	many := make([]Request, n/16)
	for i := range many {
		many[i] = Request{Name: fmt.Sprintf("n%d", i), Interface: "x"}
	}
	for _, tc := range []struct {
		name string
		reqs []Request
		want []string
	}{
		{"huge name", []Request{{Name: strings.Repeat("a", n)}}, []string{`networks[0] ("aaaa`, "(1048576 bytes)", "name must be a DNS-1123 label"}},
		{"huge interface", []Request{{Name: "a", Interface: huge}}, []string{`networks[0] ("a"): interface "xxxx`, "must be 1 to 15 bytes long"}},
		{"huge ip", []Request{{Name: "a", IPs: []string{huge}}}, []string{`networks[0] ("a"): ips[0] "xxxx`, "not an IP address in CIDR form"}},
		{"a million ips", []Request{{Name: "a", IPs: make([]string, n)}}, []string{`networks[0] ("a"): ips: 1048576 addresses, at most 16 allowed`}},
		{"huge mac", []Request{{Name: "a", MAC: huge}}, []string{`networks[0] ("a"): mac "xxxx`, "not a 48-bit MAC address"}},
		{"huge gateway", []Request{{Name: "a", DefaultRoute: []string{huge}}}, []string{`networks[0] ("a"): default-route[0] "xxxx`, "not an IP address"}},
		{"huge cni-args", []Request{{Name: "a", CNIArgs: json.RawMessage(`{"k":"` + huge + `"}`)}}, []string{`networks[0] ("a"): cni-args: 1048584 bytes, at most 4096 allowed`}},
		{"huge host address", []Request{{Name: "a", PortMappings: []PortMapping{{HostPort: 1, ContainerPort: 1, HostIP: huge}}}}, []string{`portMappings[0]: hostIP "xxxx`}},
		{"many port mappings", []Request{{Name: "a", PortMappings: make([]PortMapping, n/16)}}, []string{`portMappings: 65536 entries, at most 64 allowed`}},
		{"many entries", many, []string{"networks: 65536 entries, at most 16 allowed", `networks[1] ("n1"): interface "x" is also used by networks[0]`, moreProblems}},
		{"every key huge", []Request{{Name: huge, Interface: huge, IPs: []string{huge}, MAC: huge, DefaultRoute: []string{huge}, CNIArgs: json.RawMessage(huge)}},
			[]string{`networks[0] ("xxxx`, "name must be a DNS-1123 label", moreProblems}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			err := Validate(tc.reqs)
			checkBounded(t, err, time.Since(start), tc.want...)
		})
	}
}

func TestHostileNodeNetworks(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        []string
	}{
		{"huge name", strings.Repeat("a", maxAnnotation), []string{`networks[0] ("aaaa`, "name must be a DNS-1123 label"}},
		{"thousands of bad names", fill("", "Bad%d,", "x", maxAnnotation), []string{`networks[0] ("Bad0"): name must be a DNS-1123 label`, moreProblems}},
		{"thousands of empty names", strings.Repeat(",", maxAnnotation), []string{`networks[0] (""): empty entry`, moreProblems}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := ParseNodeNetworks(tc.value)
			checkBounded(t, err, time.Since(start), tc.want...)
		})
	}
}

func BenchmarkHostileParse(b *testing.B) {
	for _, bc := range []struct{ name, value string }{
		{"text", fill("", "n%d,", "x", maxAnnotation)},
		{"json", fill("[", `{"name":"n%d","ips":["10.0.0.1/24"]},`, `{"name":"x"}]`, maxAnnotation)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.value)))
			for b.Loop() {
				if _, err := Parse(bc.value); err == nil {
					b.Fatal("no error")
				}
			}
		})
	}
}
