package netrequest

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// rules is testdata/rules.json: the rules on names and interface names
// that kube-apiserver's validation of spec.networks and status.networks
// (kubelet-patch/0002-apiserver.patch) tests against the same file.
type rules struct {
	Comment        []string      `json:"_"`
	Names          []ruleValue   `json:"names"`
	InterfaceNames []ruleValue   `json:"interfaceNames"`
	Requests       []ruleRequest `json:"requests"`
}

type ruleValue struct {
	Value string `json:"value"`
	Valid bool   `json:"valid"`
	Why   string `json:"why"`
}

type ruleRequest struct {
	Why      string `json:"why"`
	Networks []struct {
		Name          string `json:"name"`
		InterfaceName string `json:"interfaceName"`
	} `json:"networks"`
	Valid bool `json:"valid"`
	// Invalid is what every problem names: "networks[i]" or "networks".
	Invalid string `json:"invalid"`
}

func readRules(t *testing.T) rules {
	t.Helper()
	b, err := os.ReadFile("testdata/rules.json")
	if err != nil {
		t.Fatal(err)
	}
	var r rules
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("testdata/rules.json: %v", err)
	}
	if len(r.Names) == 0 || len(r.InterfaceNames) == 0 || len(r.Requests) == 0 {
		t.Fatal("testdata/rules.json has an empty section")
	}
	return r
}

// TestSharedRules checks that Validate, and ParseNodeNetworks' name check,
// accept exactly what testdata/rules.json marks valid.
func TestSharedRules(t *testing.T) {
	r := readRules(t)
	for _, c := range r.Names {
		err := Validate([]Request{{Name: c.Value}})
		if (err == nil) != c.Valid {
			t.Errorf("name %q (%s): Validate error %v, want valid = %v", c.Value, c.Why, err, c.Valid)
		}
		// A node's list: the name rule of ParseNodeNetworks, which also
		// splits at commas and trims spaces, so is asked directly.
		if msg := checkName(c.Value); (msg == "") != c.Valid {
			t.Errorf("node network %q (%s): %q, want valid = %v", c.Value, c.Why, msg, c.Valid)
		}
	}
	for _, c := range r.InterfaceNames {
		err := Validate([]Request{{Name: "blue", Interface: c.Value}})
		if (err == nil) != c.Valid {
			t.Errorf("interface %q (%s): Validate error %v, want valid = %v", c.Value, c.Why, err, c.Valid)
		}
	}
	for _, c := range r.Requests {
		reqs := make([]Request, len(c.Networks))
		for i, n := range c.Networks {
			reqs[i] = Request{Name: n.Name, Interface: n.InterfaceName}
		}
		err := Validate(reqs)
		if (err == nil) != c.Valid {
			t.Errorf("%s: Validate error %v, want valid = %v", c.Why, err, c.Valid)
			continue
		}
		if err == nil {
			continue
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if !strings.HasPrefix(line, c.Invalid+" (") && !strings.HasPrefix(line, c.Invalid+": ") {
				t.Errorf("%s: problem %q does not name %s", c.Why, line, c.Invalid)
			}
		}
	}
}
