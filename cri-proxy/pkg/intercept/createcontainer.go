package intercept

import (
	"context"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// createContainer forwards the call only if the sandbox has every network
// its pod asked for. kubelet passes the pod's sandbox config with each
// CreateContainer, native field 10 included, so this holds even for a
// sandbox the runtime made while the proxy was dead, whose request the
// runtime did not keep. A refused sandbox is stopped by Admit (unless its
// RunPodSandbox is still running here): kubelet then makes a new one and
// the pod gets its networks. Pods that asked for none pass untouched.
func (s *Server) createContainer(ctx context.Context, req []byte, next func(context.Context, []byte) ([]byte, error)) ([]byte, error) {
	var r runtimeapi.CreateContainerRequest
	if err := proto.Unmarshal(req, &r); err != nil {
		return next(ctx, req) // containerd reports malformed requests
	}
	cfg := r.GetSandboxConfig()
	// An invalid request never got a sandbox through the proxy: one that
	// exists was made without it, and has no networks either.
	if reqs, err := requestedNetworks(cfg); err == nil && len(reqs) == 0 {
		return next(ctx, req)
	}
	if err := s.attacher.Admit(ctx, podRef(cfg, r.GetPodSandboxId())); err != nil {
		return nil, status.Error(codes.FailedPrecondition, netrequest.BoundError(err).Error())
	}
	return next(ctx, req)
}
