package intercept

import (
	"context"
	"time"

	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"
)

// stopPodSandbox detaches the sandbox's networks, with the configs cached
// when they were added, before containerd stops it (and its netns goes).
// A failed detach is logged and kept for the reconciler to retry; the call
// is forwarded regardless, so pod deletion is never blocked.
func (s *Server) stopPodSandbox(ctx context.Context, req []byte, next func(context.Context, []byte) ([]byte, error)) ([]byte, error) {
	var r runtimeapi.StopPodSandboxRequest
	if err := proto.Unmarshal(req, &r); err == nil {
		s.detach(ctx, r.GetPodSandboxId())
	}
	return next(ctx, req)
}

// removePodSandbox detaches too: kubelet may remove a sandbox whose stop
// never reached the proxy (a proxy restart in between). Detach is idempotent.
func (s *Server) removePodSandbox(ctx context.Context, req []byte, next func(context.Context, []byte) ([]byte, error)) ([]byte, error) {
	var r runtimeapi.RemovePodSandboxRequest
	if err := proto.Unmarshal(req, &r); err == nil {
		s.detach(ctx, r.GetPodSandboxId())
	}
	return next(ctx, req)
}

// detach deletes the sandbox's attachments within half of the call's
// remaining time (detachBudget without a deadline): the other half is the
// runtime's, so Stop and Remove reach it within kubelet's deadline however
// long a DEL hangs. What is not deleted in time stays recorded; the
// reconciler retries it.
func (s *Server) detach(ctx context.Context, id string) {
	if id == "" || len(s.attacher.Attachments(id)) == 0 {
		return
	}
	budget := s.detachBudget
	if deadline, ok := ctx.Deadline(); ok {
		budget = time.Until(deadline) / 2
	}
	dctx, cancel := context.WithTimeout(ctx, budget)
	defer cancel()
	if err := s.attacher.Detach(dctx, id); err != nil {
		klog.FromContext(ctx).Error(err, "detach networks; the reconciler retries", "sandbox", id, "budget", budget)
	}
}
