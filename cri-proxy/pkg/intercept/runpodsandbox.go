package intercept

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
	"k8s.io/klog/v2"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/attachment"
	"sigs.k8s.io/pod-networks/pkg/criinfo"
)

// runPodSandbox forwards the call and, once containerd made the sandbox,
// attaches the networks the pod asked for. If any attachment fails, the
// others are rolled back (by the attacher) and the sandbox is stopped and
// removed, so a failed call leaves nothing behind; the error names the
// network and kubelet shows it in the pod's events.
//
// The intent is on disk before the call is forwarded: if this process dies,
// or the caller gives up, once containerd has made the sandbox, the
// reconciler of this or the next process recognises the sandbox by pod UID
// and attempt and stops it (containerd does not keep field 10), and
// createContainer refuses it meanwhile.
func (s *Server) runPodSandbox(ctx context.Context, req []byte, next func(context.Context, []byte) ([]byte, error)) (_ []byte, retErr error) {
	var r runtimeapi.RunPodSandboxRequest
	if err := proto.Unmarshal(req, &r); err != nil {
		return next(ctx, req) // containerd reports malformed requests
	}
	cfg := r.GetConfig()
	reqs, err := requestedNetworks(cfg)
	if err != nil {
		return nil, podError(codes.InvalidArgument, cfg, fmt.Errorf("invalid network request: %w", err))
	}
	if len(reqs) == 0 {
		return next(ctx, req)
	}
	if cfg.GetLinux().GetSecurityContext().GetNamespaceOptions().GetNetwork() == runtimeapi.NamespaceMode_NODE {
		return nil, status.Errorf(codes.InvalidArgument,
			"pod %s: a host-network pod cannot request networks (it has no network namespace of its own)", podName(cfg))
	}
	if missing := missingNetworks(reqs, s.networks.Available()); len(missing) > 0 {
		return nil, podError(codes.FailedPrecondition, cfg, fmt.Errorf("network(s) %s not available on this node", strings.Join(missing, ", ")))
	}
	// FailedPrecondition, not InvalidArgument: the request is valid, this
	// node's config of the network cannot honour it (another node's, or
	// this one's once fixed, may).
	if err := s.checkCapabilities(reqs); err != nil {
		return nil, podError(codes.FailedPrecondition, cfg, err)
	}
	intent, err := s.attacher.Intend(podRef(cfg, ""), reqs)
	if err != nil {
		return nil, podError(codes.FailedPrecondition, cfg, err)
	}
	resp, err := next(ctx, req)
	if err != nil {
		// Cancelled, cut off or failed: containerd may have made the
		// sandbox all the same.
		intent.Abandon()
		return nil, err
	}
	var rr runtimeapi.RunPodSandboxResponse
	if err := proto.Unmarshal(resp, &rr); err != nil {
		intent.Abandon()
		return nil, podError(codes.Internal, cfg, fmt.Errorf("decode RunPodSandbox response: %w", err))
	}
	id := rr.GetPodSandboxId()
	defer func() {
		if retErr != nil {
			if err := s.removeSandbox(ctx, id); err != nil {
				klog.FromContext(ctx).Error(err, "roll back a sandbox whose networks failed; the reconciler stops it", "pod", podName(cfg), "sandbox", id)
				intent.Abandon()
				return
			}
		}
		if err := intent.Settle(); err != nil {
			klog.FromContext(ctx).Error(err, "settle intent; the reconciler retries", "pod", podName(cfg), "sandbox", id)
		}
	}()
	netns, primaryIPs, err := s.sandboxNetwork(ctx, id)
	if err != nil {
		return nil, podError(codes.Internal, cfg, fmt.Errorf("sandbox %s: %w", id, err))
	}
	pod := podRef(cfg, id)
	atts, err := s.attacher.Attach(ctx, pod, netns, reqs)
	if err != nil {
		return nil, podError(codes.Unknown, cfg, fmt.Errorf("attach networks: %w", err))
	}
	klog.FromContext(ctx).V(2).Info("attached networks", "pod", podName(cfg), "sandbox", id, "attachments", len(atts))
	if s.publisher != nil {
		s.publisher.PublishPod(pod, primaryIPs, atts)
	}
	return resp, nil
}

// checkCapabilities returns an error naming each network of reqs and each
// capability its request needs that no plugin of the network's current
// config declares: libcni would silently not pass that arg.
func (s *Server) checkCapabilities(reqs []attachment.Request) error {
	var errs []error
	for _, r := range reqs {
		n, ok := s.networks.Lookup(r.Name)
		if !ok {
			continue // removed since Available was read: Attach says so
		}
		errs = append(errs, n.CheckCapabilities(r.Capabilities()))
	}
	return errors.Join(errs...)
}

// missingNetworks returns the quoted names of the networks of reqs that are
// not available.
func missingNetworks(reqs []attachment.Request, available []string) []string {
	var missing []string
	for _, r := range reqs {
		if _, found := slices.BinarySearch(available, r.Name); !found {
			missing = append(missing, fmt.Sprintf("%q", r.Name))
		}
	}
	return missing
}

// removeSandbox undoes a sandbox whose networks could not be attached,
// even when the caller has given up. Once it is stopped, it can no longer
// run without its networks: a failed removal is kubelet's to retry.
func (s *Server) removeSandbox(ctx context.Context, id string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.rollbackTimeout)
	defer cancel()
	if _, err := s.runtime.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: id}); err != nil {
		return fmt.Errorf("stop sandbox: %w", err)
	}
	if _, err := s.runtime.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: id}); err != nil {
		klog.FromContext(ctx).V(2).Info("roll back: remove sandbox failed; it is stopped, kubelet removes it", "sandbox", id, "err", err)
	}
	return nil
}

// sandboxNetwork returns the sandbox's network namespace path and primary
// addresses, from containerd's verbose PodSandboxStatus.
func (s *Server) sandboxNetwork(ctx context.Context, id string) (string, []string, error) {
	st, err := s.runtime.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		return "", nil, fmt.Errorf("status: %w", err)
	}
	netns, err := criinfo.NetNSPath(st.GetInfo()["info"])
	if err != nil {
		return "", nil, err
	}
	var ips []string
	if n := st.GetStatus().GetNetwork(); n != nil {
		if n.Ip != "" {
			ips = append(ips, n.Ip)
		}
		for _, ip := range n.AdditionalIps {
			ips = append(ips, ip.GetIp())
		}
	}
	return netns, ips, nil
}
