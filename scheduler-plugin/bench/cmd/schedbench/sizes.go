package main

import (
	"context"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// sizes is what a node's networks cost in stored objects, measured on
// probe objects read back from the apiserver.
type sizes struct {
	networks, nameLen int
	// nodeJSON and nodeProto: bytes status.networks adds to a Node, per
	// network.
	nodeJSON, nodeProto float64
	// sliceJSON and sliceProto: bytes of the node's ResourceSlice with one
	// network and with all of them.
	sliceJSON, sliceProto [2]int
}

// measureSizes creates two probe nodes (no networks; n networks of 14
// characters, like "storage-net-01") and a ResourceSlice for each with 1
// and n networks, reads their JSON and protobuf sizes, and deletes them.
func measureSizes(ctx context.Context, cs kubernetes.Interface, n int) (s sizes, err error) {
	s.networks = n
	var names []string
	for i := range n {
		names = append(names, fmt.Sprintf("storage-net-%02d", i))
	}
	s.nameLen = len(names[0])
	probes := map[string][]string{"probe-0": nil, "probe-n": names}
	defer func() {
		for p := range probes {
			_ = cs.CoreV1().Nodes().Delete(context.WithoutCancel(ctx), p, metav1.DeleteOptions{})
			_ = cs.ResourceV1().ResourceSlices().Delete(context.WithoutCancel(ctx), p+"-networks", metav1.DeleteOptions{})
		}
	}()
	for p, nets := range probes {
		var check []string
		if nets != nil {
			check = []string{"status", "networks"}
		}
		if _, err := create(ctx, cs, "nodes", "", benchNode(p, nets), func(obj map[string]any) {
			if nets != nil {
				obj["status"].(map[string]any)["networks"] = nets
			}
		}, check...); err != nil {
			return s, fmt.Errorf("probe node %s: %w", p, err)
		}
		sliceNets := nets
		if sliceNets == nil {
			sliceNets = names[:1]
		}
		if _, err := cs.ResourceV1().ResourceSlices().Create(ctx, networkSlice(p, sliceNets), metav1.CreateOptions{}); err != nil {
			return s, fmt.Errorf("probe slice %s: %w", p, err)
		}
	}
	size := func(path, accept string) (int, error) {
		b, err := cs.CoreV1().RESTClient().Get().AbsPath(path).SetHeader("Accept", accept).DoRaw(ctx)
		if err != nil {
			return 0, fmt.Errorf("get %s as %s: %w", path, accept, err)
		}
		return len(b), nil
	}
	const jsonType, protoType = "application/json", "application/vnd.kubernetes.protobuf"
	var got [2][4]int // probe-0, probe-n × node JSON, node proto, slice JSON, slice proto
	for i, p := range []string{"probe-0", "probe-n"} {
		for j, q := range []struct{ path, accept string }{
			{"/api/v1/nodes/" + p, jsonType}, {"/api/v1/nodes/" + p, protoType},
			{"/apis/resource.k8s.io/v1/resourceslices/" + p + "-networks", jsonType},
			{"/apis/resource.k8s.io/v1/resourceslices/" + p + "-networks", protoType},
		} {
			if got[i][j], err = size(q.path, q.accept); err != nil {
				return s, err
			}
		}
	}
	// The probes' names have the same length, so only the networks differ.
	s.nodeJSON = float64(got[1][0]-got[0][0]) / float64(n)
	s.nodeProto = float64(got[1][1]-got[0][1]) / float64(n)
	s.sliceJSON = [2]int{got[0][2], got[1][2]}
	s.sliceProto = [2]int{got[0][3], got[1][3]}
	return s, nil
}

func (s sizes) print() {
	fmt.Printf("\nWhat a node's networks cost in stored objects (probes: %d networks with %d-character names):\n", s.networks, s.nameLen)
	fmt.Printf("  native  no object: node.status.networks adds %.1f B (JSON), %.1f B (protobuf, as stored) per network\n", s.nodeJSON, s.nodeProto)
	fmt.Printf("  dra     one ResourceSlice per node and driver: %d B JSON / %d B protobuf with 1 network, %d / %d with %d (%.1f / %.1f B per further network)\n",
		s.sliceJSON[0], s.sliceProto[0], s.sliceJSON[1], s.sliceProto[1], s.networks,
		float64(s.sliceJSON[1]-s.sliceJSON[0])/float64(s.networks-1), float64(s.sliceProto[1]-s.sliceProto[0])/float64(s.networks-1))
}
