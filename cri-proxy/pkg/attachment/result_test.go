package attachment

import (
	"testing"

	"github.com/containernetworking/cni/pkg/types/create"
)

func TestAttachmentFromResult(t *testing.T) {
	for _, tc := range []struct {
		name, result string
		want         Attachment
	}{
		{"bridge", `{"cniVersion": "1.0.0",
			"interfaces": [{"name": "cni0", "mac": "aa:00:00:00:00:01"}, {"name": "veth1", "mac": "aa:00:00:00:00:02"},
				{"name": "net1", "mac": "02:00:00:00:00:09", "sandbox": "/run/netns/other"},
				{"name": "net1", "mac": "02:00:00:00:00:03", "sandbox": "/run/netns/x"}],
			"ips": [{"address": "10.0.0.3/24", "gateway": "10.0.0.1", "interface": 3}, {"address": "10.0.0.99/24", "interface": 0},
				{"address": "fd00::3/64", "interface": 3}]}`,
			Attachment{Network: "n", Interface: "net1", MAC: "02:00:00:00:00:03", IPs: []string{"10.0.0.3/24", "fd00::3/64"}, Gateways: []string{"10.0.0.1"}}},
		{"ipam only", `{"cniVersion": "1.0.0", "ips": [{"address": "10.0.0.3/24"}]}`,
			Attachment{Network: "n", Interface: "net1", IPs: []string{"10.0.0.3/24"}}},
		{"old version", `{"cniVersion": "0.3.1", "interfaces": [{"name": "net1", "mac": "02:00:00:00:00:03", "sandbox": "/run/netns/x"}],
			"ips": [{"version": "4", "address": "10.0.0.3/24", "interface": 0}]}`,
			Attachment{Network: "n", Interface: "net1", MAC: "02:00:00:00:00:03", IPs: []string{"10.0.0.3/24"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := create.CreateFromBytes([]byte(tc.result))
			if err != nil {
				t.Fatal(err)
			}
			got, err := attachmentFromResult("n", "net1", "/run/netns/x", res)
			if err != nil {
				t.Fatal(err)
			}
			if !equalAttachments([]Attachment{*got}, []Attachment{tc.want}) {
				t.Errorf("got %+v, want %+v", *got, tc.want)
			}
		})
	}
}
