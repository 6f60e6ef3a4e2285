package intercept

import (
	"context"
	"time"
	"unicode/utf8"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/attachment"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/catalog"
	"sigs.k8s.io/pod-networks/cri-proxy/pkg/forward"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
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

// Networks is what the handlers need of the network store (*catalog.Catalog):
// in-memory reads.
type Networks interface {
	// Available returns the names of the usable networks, sorted.
	Available() []string
	// Lookup returns the network named name, with the capabilities its
	// config declares.
	Lookup(name string) (catalog.Network, bool)
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

// Bounds of the pod's namespace and name in messages: Kubernetes' own
// limits. Through CRI a caller may send anything up to the message limit.
const (
	maxNamespaceLen = 63
	maxPodNameLen   = 253
)

// podName is namespace/name for messages and logs, each cut to what
// Kubernetes allows.
func podName(cfg *runtimeapi.PodSandboxConfig) string {
	m := cfg.GetMetadata()
	return cut(m.GetNamespace(), maxNamespaceLen) + "/" + cut(m.GetName(), maxPodNameLen)
}

// cut returns s if it has at most n bytes, else its first bytes, cut on a
// UTF-8 boundary, and "...".
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// podError is the status for a problem with pod cfg's sandbox or request:
// "pod <namespace/name>: <err>", with the name cut and err bounded
// (netrequest.BoundError), so that a hostile request, up to the CRI message
// limit, cannot make the status (and kubelet's pod events) large.
func podError(code codes.Code, cfg *runtimeapi.PodSandboxConfig, err error) error {
	return status.Errorf(code, "pod %s: %v", podName(cfg), netrequest.BoundError(err))
}
