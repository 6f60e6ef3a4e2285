package criinfo

import (
	"strings"
	"testing"
)

func TestNetNSPath(t *testing.T) {
	for _, tc := range []struct {
		name, info, want, err string
	}{
		{"verbose", `{"runtimeSpec":{"linux":{"namespaces":[{"type":"pid"},{"type":"network","path":"/x/netns/cni-1"}]}}}`, "/x/netns/cni-1", ""},
		{"null spec", `{"runtimeSpec":null}`, "", "no runtime spec"},
		{"host network", `{"runtimeSpec":{"linux":{"namespaces":[{"type":"pid"}]}}}`, "", "no network namespace"},
		{"empty", ``, "", "no verbose sandbox info"},
		{"garbage", `{`, "", "unexpected end"},
	} {
		got, err := NetNSPath(tc.info)
		if got != tc.want || (tc.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: NetNSPath = %q, %v; want %q, error containing %q", tc.name, got, err, tc.want, tc.err)
		}
	}
}
