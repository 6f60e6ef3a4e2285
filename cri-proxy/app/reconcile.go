package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/attachment"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/intercept"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// kickDelay lets the runtime finish what an interrupted call started
// before a kicked Reconcile looks.
const kickDelay = 2 * time.Second

// reconcileLoop reconciles at start, every interval, and soon after the
// manager asks for it, until ctx ends.
func reconcileLoop(ctx context.Context, mgr *attachment.Manager, runtime runtimeapi.RuntimeServiceClient, every time.Duration) {
	logger := klog.FromContext(ctx)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-mgr.Kicked():
			timer.Reset(kickDelay)
			continue
		case <-timer.C:
		}
		if err := reconcile(ctx, mgr, runtime); err != nil && !errors.Is(err, context.Canceled) {
			logger.Error(err, "reconcile attachments")
		}
		timer.Reset(every)
	}
}

// reconcile lists the runtime's sandboxes and has the manager match them.
func reconcile(ctx context.Context, mgr *attachment.Manager, runtime runtimeapi.RuntimeServiceClient) error {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	snap := attachment.Snapshot{Taken: time.Now()}
	list, err := runtime.ListPodSandbox(lctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("list sandboxes: %w", err)
	}
	for _, sb := range list.GetItems() {
		md := sb.GetMetadata()
		snap.Sandboxes = append(snap.Sandboxes, attachment.Sandbox{
			ID:            sb.GetId(),
			Pod:           attachment.PodRef{Namespace: md.GetNamespace(), Name: md.GetName(), UID: md.GetUid(), Attempt: md.GetAttempt()},
			Ready:         sb.GetState() == runtimeapi.PodSandboxState_SANDBOX_READY,
			WantsNetworks: wantsNetworks(sb.GetAnnotations()),
		})
	}
	return mgr.Reconcile(ctx, snap)
}

// wantsNetworks tells whether sandbox annotations ask for networks; an
// unparsable request counts (it could only have been made without the
// proxy, so it has none).
func wantsNetworks(annotations map[string]string) bool {
	v, ok := annotations[netrequest.AnnotationKey]
	if !ok {
		return false
	}
	reqs, err := netrequest.ParseAnnotation(v)
	return err != nil || len(reqs) > 0
}

// sandboxStopper stops sandboxes through the runtime's own socket.
type sandboxStopper struct {
	runtime runtimeapi.RuntimeServiceClient
}

func (s sandboxStopper) StopSandbox(ctx context.Context, id string) error {
	_, err := s.runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id})
	return err
}

// attacher is the manager as the intercepted calls see it.
type attacher struct {
	*attachment.Manager
}

func (a attacher) Intend(pod attachment.PodRef, reqs []attachment.Request) (intercept.Intent, error) {
	in, err := a.Manager.Intend(pod, reqs)
	if err != nil {
		return nil, err
	}
	return in, nil
}
