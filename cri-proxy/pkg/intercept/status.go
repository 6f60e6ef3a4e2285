package intercept

import (
	"context"
	"encoding/json"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/crifields"
)

// InfoKeyNetworks is the verbose info key of Status (available networks)
// and PodSandboxStatus (attachments).
const InfoKeyNetworks = "podNetworks"

// status adds the node's available networks to containerd's answer as
// StatusResponse field 5, and the pod_networks runtime feature (the proxy
// attaches PodSandboxConfig.networks or fails the sandbox). kubelet calls Status every 5 s non-verbosely: the
// field is appended to the encoded response, which protobuf merges, so the
// response is only decoded for verbose calls. Availability is an in-memory
// read: Status never waits on CNI or disk.
func (s *Server) status(ctx context.Context, req []byte, next func(context.Context, []byte) ([]byte, error)) ([]byte, error) {
	resp, err := next(ctx, req)
	if err != nil {
		return nil, err
	}
	available := s.networks.Available()
	var r runtimeapi.StatusRequest
	if proto.Unmarshal(req, &r) == nil && r.GetVerbose() {
		var sr runtimeapi.StatusResponse
		if err := proto.Unmarshal(resp, &sr); err == nil {
			if sr.Info == nil {
				sr.Info = map[string]string{}
			}
			b, _ := json.Marshal(available)
			sr.Info[InfoKeyNetworks] = string(b)
			if out, err := proto.Marshal(&sr); err == nil {
				resp = out
			}
		}
	}
	return crifields.AppendPodNetworksFeature(crifields.AppendStatusNetworks(resp, available)), nil
}

// podSandboxStatus adds the sandbox's attachments (network, interface, IPs,
// MAC) to verbose answers' info.
func (s *Server) podSandboxStatus(ctx context.Context, req []byte, next func(context.Context, []byte) ([]byte, error)) ([]byte, error) {
	resp, err := next(ctx, req)
	if err != nil {
		return nil, err
	}
	var r runtimeapi.PodSandboxStatusRequest
	if proto.Unmarshal(req, &r) != nil || !r.GetVerbose() {
		return resp, nil
	}
	atts := s.attacher.Attachments(r.GetPodSandboxId())
	if len(atts) == 0 {
		return resp, nil
	}
	var sr runtimeapi.PodSandboxStatusResponse
	if err := proto.Unmarshal(resp, &sr); err != nil {
		return resp, nil
	}
	if sr.Info == nil {
		sr.Info = map[string]string{}
	}
	b, err := json.Marshal(atts)
	if err != nil {
		return resp, nil
	}
	sr.Info[InfoKeyNetworks] = string(b)
	return proto.Marshal(&sr)
}
