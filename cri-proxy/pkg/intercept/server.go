package intercept

import (
	"context"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/attachment"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/forward"
)

// Attacher is what the handlers need of the attach engine.
type Attacher interface {
	Attach(ctx context.Context, pod attachment.PodRef, netns string, reqs []attachment.Request) ([]attachment.Attachment, error)
	Detach(ctx context.Context, sandboxID string) error
	Attachments(sandboxID string) []attachment.Attachment
}

// Networks is what the handlers need of the network store: in-memory reads.
type Networks interface {
	// Available returns the names of the usable networks, sorted.
	Available() []string
}

// Publisher records a pod's attachments where users see them (the pod's
// network-status annotation on stock clusters). Publish must not block.
type Publisher interface {
	PublishPod(pod attachment.PodRef, primaryIPs []string, atts []attachment.Attachment)
}

// Server implements the intercepted RPCs.
type Server struct {
	attacher  Attacher
	networks  Networks
	runtime   runtimeapi.RuntimeServiceClient // containerd, for lookups and rollback
	publisher Publisher
	// rollbackTimeout bounds the stop and removal of a sandbox whose
	// networks could not be attached.
	rollbackTimeout time.Duration
}

// New returns a Server. runtime talks to containerd directly (not through
// the proxy). publisher may be nil.
func New(attacher Attacher, networks Networks, runtime runtimeapi.RuntimeServiceClient, publisher Publisher) *Server {
	return &Server{attacher: attacher, networks: networks, runtime: runtime, publisher: publisher, rollbackTimeout: 2 * time.Minute}
}

const (
	runtimeService       = "/runtime.v1.RuntimeService/"
	methodRunPodSandbox  = runtimeService + "RunPodSandbox"
	methodStopPodSandbox = runtimeService + "StopPodSandbox"
	methodRemoveSandbox  = runtimeService + "RemovePodSandbox"
	methodStatus         = runtimeService + "Status"
	methodSandboxStatus  = runtimeService + "PodSandboxStatus"
)

// Handlers maps each intercepted method to its handler.
func (s *Server) Handlers() map[string]forward.UnaryHandler {
	return map[string]forward.UnaryHandler{
		methodRunPodSandbox:  s.runPodSandbox,
		methodStopPodSandbox: s.stopPodSandbox,
		methodRemoveSandbox:  s.removePodSandbox,
		methodStatus:         s.status,
		methodSandboxStatus:  s.podSandboxStatus,
	}
}

func podRef(cfg *runtimeapi.PodSandboxConfig, sandboxID string) attachment.PodRef {
	m := cfg.GetMetadata()
	return attachment.PodRef{Namespace: m.GetNamespace(), Name: m.GetName(), UID: m.GetUid(), SandboxID: sandboxID}
}

func podName(cfg *runtimeapi.PodSandboxConfig) string {
	return fmt.Sprintf("%s/%s", cfg.GetMetadata().GetNamespace(), cfg.GetMetadata().GetName())
}
