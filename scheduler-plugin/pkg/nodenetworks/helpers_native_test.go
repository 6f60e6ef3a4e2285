//go:build podnetworks_native || podnetworks_intree

package nodenetworks

import (
	"strings"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The builds against the patched API: the tests common to all builds use
// the native fields.

const readFrom = "status.networks"

func podWith(request string) *v1.Pod { return nativePodWith(request) }

func nodeWith(name, networks string) *v1.Node { return nativeNode(name, networks) }

// nativePodWith asks for request (name[@interface],...) in spec.networks.
func nativePodWith(request string) *v1.Pod {
	p := &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p", Namespace: "default", UID: "u"}}
	if request == "" {
		return p
	}
	for _, item := range strings.Split(request, ",") {
		name, ifname, _ := strings.Cut(item, "@")
		p.Spec.Networks = append(p.Spec.Networks, v1.PodNetworkRequest{Name: name, InterfaceName: ifname})
	}
	return p
}

// nativeNode lists networks in status.networks ("-": none).
func nativeNode(name, networks string) *v1.Node {
	n := &v1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}
	if networks != "-" {
		n.Status.Networks = strings.Split(networks, ",")
	}
	return n
}
