package publish

import (
	"context"
	"encoding/json"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
	"k8s.io/klog/v2"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/attachment"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// PodStatuses writes each pod's network-status annotation.
type PodStatuses struct {
	client         metadata.Interface
	defaultNetwork string
	queue          chan podStatus
}

type podStatus struct {
	pod    attachment.PodRef
	status string
}

// NewPodStatuses returns a publisher; defaultNetwork names the primary network
// (eth0) in the status list.
func NewPodStatuses(client metadata.Interface, defaultNetwork string) *PodStatuses {
	return &PodStatuses{client: client, defaultNetwork: defaultNetwork, queue: make(chan podStatus, 1024)}
}

// PublishPod queues the pod's network status; it never blocks the caller
// (a full queue drops the update and logs it).
func (p *PodStatuses) PublishPod(pod attachment.PodRef, primaryIPs []string, atts []attachment.Attachment) {
	st := []netrequest.NetworkStatus{{Name: p.defaultNetwork, Interface: "eth0", IPs: primaryIPs, Default: true}}
	for _, a := range atts {
		st = append(st, netrequest.NetworkStatus{Name: a.Network, Interface: a.Interface, IPs: stripPrefix(a.IPs), MAC: a.MAC})
	}
	v, err := netrequest.FormatNetworkStatus(st)
	if err != nil {
		klog.Background().Error(err, "format network status", "pod", pod.Namespace+"/"+pod.Name)
		return
	}
	select {
	case p.queue <- podStatus{pod, v}:
	default:
		klog.Background().Error(nil, "network-status queue full; update dropped", "pod", pod.Namespace+"/"+pod.Name)
	}
}

// stripPrefix turns CIDRs into addresses, as network-status lists them.
func stripPrefix(cidrs []string) []string {
	out := make([]string, 0, len(cidrs))
	for _, c := range cidrs {
		addr, _, _ := strings.Cut(c, "/")
		out = append(out, addr)
	}
	return out
}

// Run writes queued statuses until ctx ends, retrying each a few times.
func (p *PodStatuses) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case s := <-p.queue:
			p.write(ctx, s)
		}
	}
}

func (p *PodStatuses) write(ctx context.Context, s podStatus) {
	logger := klog.FromContext(ctx).WithValues("pod", s.pod.Namespace+"/"+s.pod.Name)
	patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid":         s.pod.UID, // a recreated pod of the same name must not get this status
		"annotations": map[string]any{netrequest.StatusAnnotationKey: s.status},
	}})
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		_, err := p.client.Resource(Pods).Namespace(s.pod.Namespace).Patch(ctx, s.pod.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		if err == nil || apierrors.IsNotFound(err) || apierrors.IsConflict(err) || attempt == 8 {
			if err != nil {
				logger.V(2).Info("network-status not written", "err", err)
			}
			return
		}
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}
