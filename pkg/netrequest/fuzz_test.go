package netrequest

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"
)

// FuzzParse checks that Parse never panics, that its errors are short and
// valid UTF-8, and that whatever it accepts is valid, fully assigned, and
// parses back to itself from its JSON form.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "blue", "a@net1,b,c", "a,b@net1", " blue , red ", "blue,", "ns/blue", "a@", "a@b@c",
		`[{"name":"blue","interface":"data0","ips":["10.0.0.5/24","2001:db8::5"],"mac":"02:23:45:67:89:01"}]`,
		`[{"name":"blue","namespace":"x"}]`, `[{"name":"a","cni-args":{}}]`, `[{"name":"a"`, `[1]`, `[]`, `{"name":"a"}`,
		`[{"name":"a","ips":["10.0.0.5"]}]`, `[{"name":"a","default-route":["10.0.0.1","2001:db8::1"]},{"name":"b","default-route":["10.0.0.2"]}]`,
		"[{\"name\":\"a\",\"cni-args\":{ \"k\" : \"<v>\" },\"bandwidth\":{}}]", `[{"name":"a","cni-args":null}]`,
		`[{"name":"a","portMappings":[{"hostPort":80,"containerPort":8080,"protocol":"UDP","hostIP":"::1"},{"hostPort":80,"containerPort":1}]}]`,
		`[{"name":"a","bandwidth":{"ingressRate":1,"ingressBurst":2,"egressBurst":3}}]`, `[{"name":"a","portMappings":[{"hostport":1}]}]`,
		"\xff\xfe", `[{"name":"\u2028"}]`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		reqs, err := Parse(value)
		if err != nil {
			if reqs != nil {
				t.Fatalf("Parse(%q) returned %+v with error %v", value, reqs, err)
			}
			if msg := err.Error(); len(msg) > MaxErrorLen || !utf8.ValidString(msg) {
				t.Fatalf("Parse(%q): error of %d bytes, or not UTF-8: %q", value, len(msg), msg)
			}
			return
		}
		if err := Validate(reqs); err != nil {
			t.Fatalf("Parse(%q) accepted %+v, which does not re-validate: %v", value, reqs, err)
		}
		for _, r := range reqs {
			if r.Interface == "" {
				t.Fatalf("Parse(%q) left an interface unassigned: %+v", value, reqs)
			}
		}
		if len(reqs) == 0 {
			return
		}
		b, err := json.Marshal(reqs)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse(string(b))
		if err != nil || !reflect.DeepEqual(again, reqs) {
			t.Fatalf("Parse(%q) = %+v; its JSON %s parses to %+v, %v", value, reqs, b, again, err)
		}
	})
}
