package intercept

import (
	"context"
	"fmt"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/attachment"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/forward"
)

// Attacher is what the handlers need of the attachment lifecycle
// (attachment.Manager).
type Attacher interface {
	// Intend records durably that pod's sandbox is about to be made with
	// the networks of reqs.
	Intend(pod attachment.PodRef, reqs []attachment.Request) (Intent, error)
	// Attach attaches the networks to the sandbox, or rolls back and fails.
	Attach(ctx context.Context, pod attachment.PodRef, netns string, reqs []attachment.Request) ([]attachment.Attachment, error)
	// Admit tells whether containers may start in pod.SandboxID; when not,
	// the sandbox is being stopped.
	Admit(ctx context.Context, pod attachment.PodRef) error
	// Detach deletes the sandbox's attachments, or keeps them for a retry.
	Detach(ctx context.Context, sandboxID string) error
	// Attachments reads the sandbox's attachments from memory.
	Attachments(sandboxID string) []attachment.Attachment
}

// Intent is attachment.Intent as the handlers use it.
type Intent interface {
	// Settle: the call's outcome is known.
	Settle() error
	// Abandon: it is not; Reconcile and Admit take over.
	Abandon()
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
	// detachBudget bounds the detach of a Stop or Remove whose caller set
	// no deadline.
	detachBudget time.Duration
}

// New returns a Server. runtime talks to containerd directly (not through
// the proxy). publisher may be nil.
func New(attacher Attacher, networks Networks, runtime runtimeapi.RuntimeServiceClient, publisher Publisher) *Server {
	return &Server{attacher: attacher, networks: networks, runtime: runtime, publisher: publisher, rollbackTimeout: 2 * time.Minute, detachBudget: time.Minute}
}

const (
	runtimeService        = "/runtime.v1.RuntimeService/"
	methodRunPodSandbox   = runtimeService + "RunPodSandbox"
	methodCreateContainer = runtimeService + "CreateContainer"
	methodStopPodSandbox  = runtimeService + "StopPodSandbox"
	methodRemoveSandbox   = runtimeService + "RemovePodSandbox"
	methodStatus          = runtimeService + "Status"
	methodSandboxStatus   = runtimeService + "PodSandboxStatus"
)

// Handlers maps each intercepted method to its handler.
func (s *Server) Handlers() map[string]forward.UnaryHandler {
	return map[string]forward.UnaryHandler{
		methodRunPodSandbox:   s.runPodSandbox,
		methodCreateContainer: s.createContainer,
		methodStopPodSandbox:  s.stopPodSandbox,
		methodRemoveSandbox:   s.removePodSandbox,
		methodStatus:          s.status,
		methodSandboxStatus:   s.podSandboxStatus,
	}
}

func podRef(cfg *runtimeapi.PodSandboxConfig, sandboxID string) attachment.PodRef {
	m := cfg.GetMetadata()
	return attachment.PodRef{Namespace: m.GetNamespace(), Name: m.GetName(), UID: m.GetUid(), Attempt: m.GetAttempt(), SandboxID: sandboxID}
}

func podName(cfg *runtimeapi.PodSandboxConfig) string {
	return fmt.Sprintf("%s/%s", cfg.GetMetadata().GetNamespace(), cfg.GetMetadata().GetName())
}
