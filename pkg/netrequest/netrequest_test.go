package netrequest

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// list returns n comma-separated valid names.
func list(n int) string {
	names := make([]string, n)
	for i := range names {
		names[i] = "n" + strconv.Itoa(i)
	}
	return strings.Join(names, ",")
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        []Request
		err         []string // substrings the error must contain; nil = no error
	}{
		// No request.
		{"empty", "", nil, nil},
		{"blank", " \t\n", nil, nil},
		{"empty JSON list", " [ ] ", nil, nil},

		// Text form.
		{"one", "blue", []Request{{Name: "blue", Interface: "net1"}}, nil},
		{"two", "blue,red", []Request{{Name: "blue", Interface: "net1"}, {Name: "red", Interface: "net2"}}, nil},
		{"whitespace", "  blue ,\tred@eth5 \n", []Request{{Name: "blue", Interface: "net1"}, {Name: "red", Interface: "eth5"}}, nil},
		{"explicit first", "a@net1,b,c", []Request{{Name: "a", Interface: "net1"}, {Name: "b", Interface: "net2"}, {Name: "c", Interface: "net3"}}, nil},
		{"explicit later", "a,b@net1", []Request{{Name: "a", Interface: "net2"}, {Name: "b", Interface: "net1"}}, nil},
		{"sixteen", list(16), nil, nil},
		{"trailing comma", "blue,", nil, []string{`networks[1] (""): empty entry`}},
		{"leading comma", ",blue", nil, []string{`networks[0] (""): empty entry`}},
		{"double comma", "a,,b", nil, []string{`networks[1] (""): empty entry`}},
		{"empty interface", "blue@", nil, []string{`networks[0] ("blue@"): empty interface after '@'`}},
		{"two ats", "blue@a@b", nil, []string{`more than one '@'`}},
		{"namespace text", "other/blue", nil, []string{`networks[0] ("other/blue"): networks are node-level and have no namespace: use "blue"`}},
		{"namespace text with interface", "a,other/blue@net3", nil, []string{`networks[1] ("other/blue@net3"): networks are node-level`}},
		{"every syntax problem", "a/b,,c@", nil, []string{`networks[0]`, `networks[1]`, `networks[2]`}},
		{"single JSON object", `{"name":"blue"}`, nil, []string{"wrap the object in [ ]"}},
		{"bad name", "blue,Bad_Name", nil, []string{`networks[1] ("Bad_Name"): name must be a DNS-1123 label: `}},
		{"missing name", "@net1", nil, []string{`networks[0] (""): name is required`}},
		{"long name", strings.Repeat("a", 64), nil, []string{"name must be a DNS-1123 label"}},
		{"duplicate names", "blue,red,blue", nil, []string{`networks[2] ("blue"): duplicate name, also networks[0]`}},
		{"duplicate interfaces", "blue@x1,red@x1", nil, []string{`networks[1] ("red"): interface "x1" is also used by networks[0]`}},
		{"eth0", "blue@eth0", nil, []string{`interface "eth0": is the pod's primary interface`}},
		{"lo", "blue@lo", nil, []string{`interface "lo": is the pod's loopback interface`}},
		{"interface too long", "blue@" + strings.Repeat("x", 16), nil, []string{"must be 1 to 15 bytes long"}},
		{"interface 15 bytes", "blue@" + strings.Repeat("x", 15), []Request{{Name: "blue", Interface: strings.Repeat("x", 15)}}, nil},
		{"interface colon", "blue@net1:0", nil, []string{"must not contain '/', ':', '%', ',' or '@'"}},
		{"interface slash", "blue@a/b", nil, []string{"must not contain '/', ':', '%', ',' or '@'"}},
		{"interface dot", "blue@.", nil, []string{`must not be "." or ".."`}},
		{"interface dotdot", "blue@..", nil, []string{`must not be "." or ".."`}},
		{"interface space", "blue@a b", nil, []string{"printable ASCII without whitespace"}},
		{"interface non-ASCII", "blue@nét", nil, []string{"printable ASCII without whitespace"}},
		{"seventeen", list(17), nil, []string{"networks: 17 entries, at most 16 allowed"}},
		{"seventeen and bad", list(17) + ",A", nil, []string{"18 entries", `networks[17] ("A"): name must be`}},

		// JSON form.
		{"json one", `[{"name":"blue"}]`, []Request{{Name: "blue", Interface: "net1"}}, nil},
		{"json full", ` [ {"name":"blue","interface":"data0","ips":["10.0.0.5/24","2001:db8::5/64"],"mac":"02:23:45:67:89:01"}, {"name":"red"} ] `,
			[]Request{{Name: "blue", Interface: "data0", IPs: []string{"10.0.0.5/24", "2001:db8::5/64"}, MAC: "02:23:45:67:89:01"}, {Name: "red", Interface: "net1"}}, nil},
		{"json explicit later", `[{"name":"a"},{"name":"b","interface":"net1"}]`, []Request{{Name: "a", Interface: "net2"}, {Name: "b", Interface: "net1"}}, nil},
		{"json null values", `[{"name":"a","interface":null,"ips":null,"mac":null}]`, []Request{{Name: "a", Interface: "net1"}}, nil},
		{"json empty interface", `[{"name":"a","interface":""}]`, []Request{{Name: "a", Interface: "net1"}}, nil},
		{"json multiline", "[\n  {\"name\": \"a\"},\n  {\"name\": \"b\"}\n]\n", []Request{{Name: "a", Interface: "net1"}, {Name: "b", Interface: "net2"}}, nil},
		{"json namespace", `[{"name":"blue","namespace":"other"}]`, nil, []string{`networks[0] ("blue"): key "namespace": networks are node-level and have no namespace`}},
		{"json empty namespace", `[{"namespace":"","name":"blue"}]`, nil, []string{`networks[0] ("blue"): key "namespace"`}},
		{"json unknown key", `[{"name":"a"},{"name":"blue","foo":1}]`, nil, []string{`networks[1] ("blue"): unknown key "foo"`}},
		{"json unsupported NPWG keys", `[{"name":"blue","default-route":["10.0.0.1"],"infiniband-guid":"x","ipam-claim-reference":"c"}]`, nil,
			[]string{`networks[0] ("blue"): key "infiniband-guid" of the NPWG network selection element is not supported`, `networks[0] ("blue"): key "ipam-claim-reference" of the NPWG`}},
		{"json key case", `[{"Name":"blue"}]`, nil, []string{`unknown key "Name"`}},
		{"json duplicate key", `[{"name":"blue","name":"red"}]`, nil, []string{`duplicate key "name"`}},
		{"json escaped duplicate key", `[{"name":"blue","n\u0061me":"red"}]`, nil, []string{`networks[0] ("red"): duplicate key "name"`}},
		{"json problems of two entries", `[{"name":"a","ips":[]},{"foo":1,"name":"b","mac":"x","mac":"y"}]`, nil,
			[]string{`networks[0] ("a"): "ips" must not be empty`, `networks[1] ("b"): unknown key "foo"`, `networks[1] ("b"): duplicate key "mac"`}},
		{"json malformed second", `[{"name":"a"},{"name":b}]`, nil, []string{`networks[1] (""): invalid JSON: invalid character 'b'`}},
		{"json null entry", `[{"name":"a"},null]`, nil, []string{`networks[1] (""): must be a JSON object, got null`}},
		{"json malformed", `[{"name":"blue"`, nil, []string{"invalid JSON"}},
		{"json malformed value", `[{"name":blue}]`, nil, []string{"invalid character"}},
		{"json trailing data", `[{"name":"blue"}] x`, nil, []string{"invalid JSON"}},
		{"json two lists", `[][]`, nil, []string{"data after the list"}},
		{"json trailing comma", `[{"name":"blue"},]`, nil, []string{"invalid"}},
		{"json not an object", `["blue"]`, nil, []string{`networks[0] (""): must be a JSON object, got a string`}},
		{"json wrong type", `[{"name":1}]`, nil, []string{`networks[0] (""): key "name": want a string, got a number`}},
		{"json ips wrong type", `[{"name":"a","ips":"10.0.0.1"}]`, nil, []string{`key "ips"`}},
		{"json ips empty", `[{"name":"a","ips":[]}]`, nil, []string{`"ips" must not be empty`}},
		{"json missing name", `[{"interface":"x"}]`, nil, []string{`networks[0] (""): name is required`}},
		{"json bad ip", `[{"name":"a","ips":["10.0.0.1/24","10.0.0.300/24"]}]`, nil, []string{`networks[0] ("a"): ips[1] "10.0.0.300/24": not an IP address in CIDR form (address/prefix), e.g. "10.0.0.5/24"`}},
		{"json bad cidr", `[{"name":"a","ips":["10.0.0.1/33"]}]`, nil, []string{`ips[0] "10.0.0.1/33": not an IP address in CIDR form`}},
		{"json ip zone", `[{"name":"a","ips":["fe80::1%eth0/64"]}]`, nil, []string{`ips[0] "fe80::1%eth0/64": not an IP address in CIDR form`}},
		{"json bad mac", `[{"name":"a","mac":"02:23:45:67:89"}]`, nil, []string{`mac "02:23:45:67:89": not a 48-bit MAC address`}},
		{"json 64-bit mac", `[{"name":"a","mac":"02:23:45:67:89:01:02:03"}]`, nil, []string{`not a 48-bit MAC address`}},
		{"json multicast mac", `[{"name":"a","mac":"01:00:5e:00:00:01"}]`, nil, []string{`multicast address`}},
		{"json zero mac", `[{"name":"a","mac":"00:00:00:00:00:00"}]`, nil, []string{`all-zero address`}},
		{"json eth0", `[{"name":"a","interface":"eth0"}]`, nil, []string{`is the pod's primary interface`}},
		{"json duplicate interfaces", `[{"name":"a","interface":"x"},{"name":"b","interface":"x"}]`, nil, []string{`networks[1] ("b"): interface "x" is also used by networks[0]`}},
		{"json every problem", `[{"name":"Bad_Name","interface":"eth0","ips":["x"],"mac":"y"},{"name":"Bad_Name"}]`, nil,
			[]string{`networks[0] ("Bad_Name"): name must be`, `networks[0] ("Bad_Name"): interface "eth0"`, `networks[0] ("Bad_Name"): ips[0] "x"`, `networks[0] ("Bad_Name"): mac "y"`, `networks[1] ("Bad_Name"): name must be`}},
	} {
		t.Run(tc.name, func(t *testing.T) { checkParse(t, tc.value, tc.want, tc.err) })
	}
}

// checkParse checks that Parse(value) returns want (any request if want is
// nil) when errs is nil, else an error containing each of errs.
func checkParse(t *testing.T, value string, want []Request, errs []string) {
	t.Helper()
	got, err := Parse(value)
	if errs == nil {
		if err != nil {
			t.Fatalf("Parse(%q): %v", value, err)
		}
		if want != nil && !reflect.DeepEqual(got, want) {
			t.Errorf("Parse(%q) = %+v, want %+v", value, got, want)
		}
		return
	}
	if err == nil {
		t.Fatalf("Parse(%q) = %+v, want an error", value, got)
	}
	if got != nil {
		t.Errorf("Parse(%q) returned %+v with an error", value, got)
	}
	for _, s := range errs {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("Parse(%q) error %q does not contain %q", value, err, s)
		}
	}
}

func TestRequestKeys(t *testing.T) {
	// keyProblem tells duplicate keys from unknown ones by these lists.
	for _, tc := range []struct {
		typ  reflect.Type
		keys []string
	}{
		{reflect.TypeFor[Request](), requestKeys},
		{reflect.TypeFor[PortMapping](), portMappingKeys},
		{reflect.TypeFor[Bandwidth](), bandwidthKeys},
	} {
		var keys []string
		for i := range tc.typ.NumField() {
			name, _, _ := strings.Cut(tc.typ.Field(i).Tag.Get("json"), ",")
			keys = append(keys, name)
		}
		if !reflect.DeepEqual(keys, tc.keys) {
			t.Errorf("%s's JSON keys are %q, the list has %q", tc.typ, keys, tc.keys)
		}
	}
}

func TestParseAnnotationSyntaxOnly(t *testing.T) {
	// Rules beyond syntax are Validate's: the scheduler and the proxy may
	// take requests from elsewhere and apply them the same way.
	got, err := ParseAnnotation("Bad_Name@eth0,Bad_Name")
	if err != nil {
		t.Fatal(err)
	}
	want := []Request{{Name: "Bad_Name", Interface: "eth0"}, {Name: "Bad_Name"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
	if err := Validate(got); err == nil {
		t.Error("Validate accepted it")
	}
}

func TestValidateBoundsProblems(t *testing.T) {
	reqs := make([]Request, 10000)
	for i := range reqs {
		reqs[i].Name = "X"
	}
	err := Validate(reqs)
	if err == nil {
		t.Fatal("no error")
	}
	// As many whole problems as fit, then a line saying others were left
	// out.
	msg := err.Error()
	lines := strings.Split(msg, "\n")
	if len(msg) > MaxErrorLen || len(lines) < 3 || lines[len(lines)-1] != moreProblems || strings.Contains(msg, "bytes cut") {
		t.Errorf("error of %d bytes, %d lines:\n%s", len(msg), len(lines), msg)
	}
	if want := `networks[0] ("X"): name must be a DNS-1123 label`; !strings.HasPrefix(lines[1], want) {
		t.Errorf("second line %q, want it to start with %q", lines[1], want)
	}
	// Long lists find duplicates through maps, with the same messages.
	long := make([]Request, MaxNetworks+2)
	for i := range long {
		long[i] = Request{Name: "n" + strconv.Itoa(i), Interface: "if" + strconv.Itoa(i)}
	}
	long[MaxNetworks+1] = Request{Name: "n3", Interface: "if5"}
	err = Validate(long)
	for _, s := range []string{`networks[17] ("n3"): duplicate name, also networks[3]`, `networks[17] ("n3"): interface "if5" is also used by networks[5]`} {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Errorf("error %v does not contain %q", err, s)
		}
	}
}

func TestAssignInterfaces(t *testing.T) {
	for _, tc := range []struct {
		in   []Request
		want []string
	}{
		{nil, nil},
		{[]Request{{Name: "a", Interface: "net1"}, {Name: "b"}, {Name: "c"}}, []string{"net1", "net2", "net3"}},
		{[]Request{{Name: "a"}, {Name: "b", Interface: "net1"}}, []string{"net2", "net1"}},
		{[]Request{{Name: "a"}, {Name: "b", Interface: "net2"}, {Name: "c"}, {Name: "d", Interface: "net3"}, {Name: "e"}}, []string{"net1", "net2", "net4", "net3", "net5"}},
		{[]Request{{Name: "a", Interface: "data"}, {Name: "b"}}, []string{"data", "net1"}},
	} {
		in := append([]Request(nil), tc.in...)
		got := AssignInterfaces(tc.in)
		var ifs []string
		for _, r := range got {
			ifs = append(ifs, r.Interface)
		}
		if !reflect.DeepEqual(ifs, tc.want) {
			t.Errorf("AssignInterfaces(%+v) interfaces = %q, want %q", tc.in, ifs, tc.want)
		}
		if !reflect.DeepEqual(tc.in, in) {
			t.Errorf("AssignInterfaces modified its input: %+v", tc.in)
		}
	}
}

func TestParseNodeNetworks(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  []string
		err   []string
	}{
		{"", nil, nil},
		{"  ", nil, nil},
		{"blue", []string{"blue"}, nil},
		{"blue,red", []string{"blue", "red"}, nil},
		{" red , blue,red ", []string{"blue", "red"}, nil},
		{"blue,", nil, []string{`networks[1] (""): empty entry`}},
		{"blue,Red,x/y", nil, []string{`networks[1] ("Red"): name must be a DNS-1123 label`, `networks[2] ("x/y"): name must be`}},
	} {
		got, err := ParseNodeNetworks(tc.value)
		if tc.err == nil {
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Errorf("ParseNodeNetworks(%q) = %q, %v; want %q", tc.value, got, err, tc.want)
			}
			continue
		}
		if err == nil {
			t.Errorf("ParseNodeNetworks(%q) = %q, want an error", tc.value, got)
			continue
		}
		for _, s := range tc.err {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("ParseNodeNetworks(%q) error %q does not contain %q", tc.value, err, s)
			}
		}
	}
}

func TestFormatNodeNetworks(t *testing.T) {
	for _, tc := range []struct {
		in   []string
		want string
	}{
		{nil, ""},
		{[]string{"blue"}, "blue"},
		{[]string{"blue", "red"}, "blue,red"},
		{[]string{"red", "blue", "red", ""}, "blue,red"},
	} {
		in := append([]string(nil), tc.in...)
		if got := FormatNodeNetworks(tc.in); got != tc.want {
			t.Errorf("FormatNodeNetworks(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if !reflect.DeepEqual(in, tc.in) {
			t.Errorf("FormatNodeNetworks modified its input: %q", tc.in)
		}
		if got, err := ParseNodeNetworks(FormatNodeNetworks(tc.in)); err != nil || FormatNodeNetworks(got) != tc.want {
			t.Errorf("round trip of %q: %q, %v", tc.in, got, err)
		}
	}
}

func TestFormatNetworkStatus(t *testing.T) {
	if got, err := FormatNetworkStatus(nil); err != nil || got != "[]" {
		t.Errorf("FormatNetworkStatus(nil) = %q, %v; want []", got, err)
	}
	st := []NetworkStatus{
		{Name: "primary", Interface: "eth0", IPs: []string{"10.244.1.5"}, Default: true, DNS: &DNS{Nameservers: []string{"10.96.0.10"}}},
		{Name: "blue", Interface: "net1", IPs: []string{"192.168.10.2"}, MAC: "02:00:00:00:00:01"},
	}
	got, err := FormatNetworkStatus(st)
	if err != nil {
		t.Fatal(err)
	}
	want := `[{"name":"primary","interface":"eth0","ips":["10.244.1.5"],"default":true,"dns":{"nameservers":["10.96.0.10"]}},` +
		`{"name":"blue","interface":"net1","ips":["192.168.10.2"],"mac":"02:00:00:00:00:01"}]`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	var back []NetworkStatus
	if err := json.Unmarshal([]byte(got), &back); err != nil || !reflect.DeepEqual(back, st) {
		t.Errorf("round trip: %+v, %v", back, err)
	}
}

func BenchmarkParse(b *testing.B) {
	for _, bc := range []struct{ name, value string }{
		{"text", "blue,red@data0,green"},
		{"json", `[{"name":"blue"},{"name":"red","interface":"data0","ips":["10.0.0.5/24"],"mac":"02:23:45:67:89:01"},{"name":"green"}]`},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Parse(bc.value); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkParseNodeNetworks(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseNodeNetworks("blue,green,red,yellow"); err != nil {
			b.Fatal(err)
		}
	}
}
