package main

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// What cri-proxy adds to Status — networks (field 5) and, inside features,
// pod_networks (field 4) — is ignored by the comparison; any other
// difference is not.
func TestClearUnknownIgnoresOnlyAddedFields(t *testing.T) {
	runtime := &runtimeapi.StatusResponse{
		Status:   &runtimeapi.RuntimeStatus{Conditions: []*runtimeapi.RuntimeCondition{{Type: runtimeapi.RuntimeReady, Status: true}}},
		Features: &runtimeapi.RuntimeFeatures{SupplementalGroupsPolicy: true},
	}
	proxied := proto.Clone(runtime).(*runtimeapi.StatusResponse)
	proxied.ProtoReflect().SetUnknown(protowire.AppendString(protowire.AppendTag(nil, 5, protowire.BytesType), "blue"))
	proxied.Features.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 4, protowire.VarintType), 1))
	if proto.Equal(runtime, proxied) {
		t.Fatal("the fixture adds nothing")
	}
	clearUnknown(proxied.ProtoReflect())
	if !proto.Equal(runtime, proxied) {
		t.Errorf("after clearUnknown: %v, want %v", proxied, runtime)
	}
	proxied.Status.Conditions[0].Status = false
	if proto.Equal(runtime, proxied) {
		t.Error("a changed condition is not a difference")
	}
}
