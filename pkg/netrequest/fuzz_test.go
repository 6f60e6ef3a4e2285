package netrequest

import (
	"encoding/json"
	"reflect"
	"testing"
)

// FuzzParse checks that Parse never panics, and that whatever it accepts is
// valid, fully assigned, and parses back to itself from its JSON form.
func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "blue", "a@net1,b,c", "a,b@net1", " blue , red ", "blue,", "ns/blue", "a@", "a@b@c",
		`[{"name":"blue","interface":"data0","ips":["10.0.0.5/24","2001:db8::5"],"mac":"02:23:45:67:89:01"}]`,
		`[{"name":"blue","namespace":"x"}]`, `[{"name":"a","cni-args":{}}]`, `[{"name":"a"`, `[1]`, `[]`, `{"name":"a"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		reqs, err := Parse(value)
		if err != nil {
			if reqs != nil {
				t.Fatalf("Parse(%q) returned %+v with error %v", value, reqs, err)
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
