package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/libcni"
)

// The node's networks are valid config lists, apart from each other in
// name, bridge and subnet, with bridge names the kernel takes once the
// placeholders are replaced.
func TestNetworkConflists(t *testing.T) {
	names, bridges, subnets := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for k := 1; k <= 16; k++ {
		b, err := networkConflist(k)
		if err != nil {
			t.Fatal(err)
		}
		conf := strings.NewReplacer("{{NODE_INDEX}}", "50", "{{NODE_DIR}}", "/x/nodes/node50").Replace(string(b))
		list, err := libcni.NetworkConfFromBytes([]byte(conf))
		if err != nil {
			t.Fatalf("network %d: %v\n%s", k, err, conf)
		}
		if list.Name != networkName(k) || len(list.Plugins) != 1 {
			t.Fatalf("network %d: name %q, %d plugins", k, list.Name, len(list.Plugins))
		}
		var p struct {
			Bridge string `json:"bridge"`
			IPAM   struct {
				Ranges [][]struct {
					Subnet string `json:"subnet"`
				} `json:"ranges"`
				DataDir string `json:"dataDir"`
			} `json:"ipam"`
		}
		if err := json.Unmarshal(list.Plugins[0].Bytes, &p); err != nil {
			t.Fatal(err)
		}
		if len(p.Bridge) > 15 {
			t.Errorf("network %d: bridge %q is longer than IFNAMSIZ-1", k, p.Bridge)
		}
		if p.IPAM.DataDir != "/x/nodes/node50/bench-ipam" {
			t.Errorf("network %d: dataDir %q", k, p.IPAM.DataDir)
		}
		subnet := p.IPAM.Ranges[0][0].Subnet
		if names[list.Name] || bridges[p.Bridge] || subnets[subnet] {
			t.Errorf("network %d: %s, %s or %s repeats", k, list.Name, p.Bridge, subnet)
		}
		names[list.Name], bridges[p.Bridge], subnets[subnet] = true, true, true
	}
}

func TestCheckInside(t *testing.T) {
	ok := `1: lo    inet 127.0.0.1/8 scope host lo
2: eth0    inet 10.244.1.5/24 brd 10.244.1.255 scope global eth0
3: net1    inet 10.201.1.2/24 brd 10.201.1.255 scope global net1
4: net2    inet 10.202.1.2/24 brd 10.202.1.255 scope global net2`
	if err := checkInside(ok, 2, 1); err != nil {
		t.Errorf("two networks: %v", err)
	}
	for name, c := range map[string]struct {
		out string
		n   int
	}{
		"missing net2":   {ok, 3},
		"extra net2":     {ok, 1},
		"wrong subnet":   {strings.Replace(ok, "10.202.1.2", "10.203.1.2", 1), 2},
		"no eth0":        {strings.Replace(ok, "eth0", "eth9", 1), 2},
		"no interfaces0": {ok, 0},
	} {
		if err := checkInside(c.out, c.n, 1); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

func TestCheckStored(t *testing.T) {
	uid, err := checkStored([]byte(`{"metadata":{"uid":"u1"},"spec":{"networks":[{"name":"bench01"},{"name":"bench02"}]}}`), 2)
	if err != nil || uid != "u1" {
		t.Errorf("checkStored = %q, %v", uid, err)
	}
	if _, err := checkStored([]byte(`{"metadata":{"uid":"u1"},"spec":{}}`), 2); err == nil {
		t.Error("dropped spec.networks: no error")
	}
	if _, err := checkStored([]byte(`{"metadata":{"uid":"u1"},"spec":{}}`), 0); err != nil {
		t.Errorf("no networks: %v", err)
	}
}

func TestStats(t *testing.T) {
	d := []time.Duration{5, 1, 4, 2, 3, 6}
	if got := median(d); got != 3 { // (3+4)/2 in integer nanoseconds
		t.Errorf("median = %v", got)
	}
	if got := median(d[:5]); got != 3 {
		t.Errorf("median of 5 = %v", got)
	}
	if got := quantile(d, 0.9); got != 6 {
		t.Errorf("p90 = %v", got)
	}
	var ten []time.Duration
	for i := 1; i <= 10; i++ {
		ten = append(ten, time.Duration(i))
	}
	if got := quantile(ten, 0.9); got != 9 {
		t.Errorf("p90 of 1..10 = %v", got)
	}
}

func TestParseArms(t *testing.T) {
	if a, err := parseArms("0, 1,4,16"); err != nil || len(a) != 4 || a[3] != 16 {
		t.Errorf("parseArms = %v, %v", a, err)
	}
	for _, bad := range []string{"1,4", "0,17", "0,0", "0,x", ""} {
		if _, err := parseArms(bad); err == nil {
			t.Errorf("parseArms(%q): no error", bad)
		}
	}
}

func TestShellJoin(t *testing.T) {
	if got := shellJoin([]string{"/a/b", "-rounds", "5", "it's", ""}); got != `/a/b -rounds 5 'it'\''s' ''` {
		t.Errorf("shellJoin = %s", got)
	}
}
