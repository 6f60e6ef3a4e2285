package publish

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/metadata"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/klog/v2"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/attachment"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

const (
	// defaultPodWorkers writes two pods at a time: one slow or timing-out
	// PATCH does not hold up every other pod, and more workers would buy
	// little because the client's own QPS limit bounds the write rate.
	defaultPodWorkers = 2
	// The default retry backoff per pod: 100 ms doubling up to 30 s. The cap
	// is larger than the node publisher's because up to every pod on the node
	// may be retrying at once against a struggling API server.
	defaultPodRetryBase = 100 * time.Millisecond
	defaultPodRetryMax  = 30 * time.Second
	// reportRetries is the failed attempt after which a pod's write is logged
	// as an error (once); before that, failures log at V(2).
	reportRetries = 8
)

// PodKey names one pod (not one pod name): a pod recreated under the same
// namespace/name has a new UID and so its own key, status, and retry count.
type PodKey struct {
	Namespace, Name, UID string
}

// String is namespace/name, for messages.
func (k PodKey) String() string { return k.Namespace + "/" + k.Name }

// PodOptions tunes a PodStatuses; the zero value is the production default.
type PodOptions struct {
	// Workers is how many pods are written at once; 0 means 2.
	Workers int
	// RateLimiter spaces the retries of a failed write; nil means
	// exponential backoff from 100 ms, capped at 30 s.
	RateLimiter workqueue.TypedRateLimiter[PodKey]
}

// PodStatuses writes each pod's network-status annotation.
//
// Every publish is kept until it is written or the pod is gone: PublishPod
// records the latest status per pod and queues the pod on a workqueue, so an
// update is never dropped, a pod published many times before its write
// starts is written once with its latest status, and a status published while
// the pod's previous write is in flight is written after it. A write that
// fails for any other reason than the pod being gone or replaced (NotFound,
// UID conflict) or the patch being rejected as invalid is retried with capped
// backoff for as long as the proxy runs: the publisher has no resync, so
// giving up would leave the pod without its status for good.
type PodStatuses struct {
	client         metadata.Interface
	defaultNetwork string
	workers        int
	queue          workqueue.TypedRateLimitingInterface[PodKey]

	mu sync.Mutex
	// pending is the latest status not yet written, per pod. An entry leaves
	// once its value is written or the pod is gone, so the map holds only
	// the pods whose writes are queued, in flight or retrying.
	pending map[PodKey]string
}

// NewPodStatuses returns a publisher; defaultNetwork names the primary network
// (eth0) in the status list. Run must be called for it to write anything and
// to release the queue.
func NewPodStatuses(client metadata.Interface, defaultNetwork string, opts PodOptions) *PodStatuses {
	if opts.Workers <= 0 {
		opts.Workers = defaultPodWorkers
	}
	if opts.RateLimiter == nil {
		opts.RateLimiter = workqueue.NewTypedItemExponentialFailureRateLimiter[PodKey](defaultPodRetryBase, defaultPodRetryMax)
	}
	return &PodStatuses{
		client:         client,
		defaultNetwork: defaultNetwork,
		workers:        opts.Workers,
		queue:          workqueue.NewTypedRateLimitingQueueWithConfig(opts.RateLimiter, workqueue.TypedRateLimitingQueueConfig[PodKey]{}),
		pending:        map[PodKey]string{},
	}
}

// PublishPod records the pod's network status to be written and returns at
// once: it never waits on the API server. The latest call for a pod wins;
// after Run has ended it does nothing.
func (p *PodStatuses) PublishPod(pod attachment.PodRef, primaryIPs []string, atts []attachment.Attachment) {
	st := []netrequest.NetworkStatus{{Name: p.defaultNetwork, Interface: "eth0", IPs: primaryIPs, Default: true}}
	for _, a := range atts {
		st = append(st, netrequest.NetworkStatus{Name: a.Network, Interface: a.Interface, IPs: stripPrefix(a.IPs), MAC: a.MAC})
	}
	v, err := netrequest.FormatNetworkStatus(st)
	if err != nil {
		klog.Background().Error(err, "format network status", "pod", pod.String(), "uid", pod.UID)
		return
	}
	if p.queue.ShuttingDown() { // nobody would write it or drop the entry
		return
	}
	key := PodKey{Namespace: pod.Namespace, Name: pod.Name, UID: pod.UID}
	p.mu.Lock()
	p.pending[key] = v
	p.mu.Unlock()
	// Added after the map is updated: a worker that takes the key reads this
	// value or a later one, and a key taken before is marked dirty and
	// processed again once its in-flight write is done.
	p.queue.Add(key)
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

// Run writes published statuses until ctx ends, then shuts the queue down
// and returns once its workers have stopped. Statuses still pending then are
// not written. Call it once.
func (p *PodStatuses) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for range p.workers {
		wg.Go(func() {
			for p.processNext(ctx) {
			}
		})
	}
	<-ctx.Done()
	p.queue.ShutDown()
	wg.Wait()
}

// processNext writes the status of the next queued pod; false means the
// worker should stop.
func (p *PodStatuses) processNext(ctx context.Context) bool {
	key, quit := p.queue.Get()
	if quit {
		return false
	}
	defer p.queue.Done(key)
	if ctx.Err() != nil { // a shut-down queue still hands out what it holds
		return false
	}
	p.mu.Lock()
	status, ok := p.pending[key]
	p.mu.Unlock()
	if !ok { // written or dropped already, e.g. by a retry that raced a publish
		p.queue.Forget(key)
		return true
	}
	logger := klog.FromContext(ctx).WithValues("pod", key.String(), "uid", key.UID)
	err := p.write(ctx, key, status)
	switch {
	case err == nil:
		p.mu.Lock()
		if p.pending[key] == status { // else a newer status is queued
			delete(p.pending, key)
		}
		p.mu.Unlock()
		p.queue.Forget(key)
		logger.V(2).Info("published network-status")
	case apierrors.IsNotFound(err) || apierrors.IsConflict(err):
		// Deleted, or replaced under the same name (the UID precondition):
		// no status for this UID can ever be written.
		p.drop(key)
		logger.V(2).Info("network-status dropped: pod gone or replaced", "err", err)
	case apierrors.IsInvalid(err) || apierrors.IsBadRequest(err):
		p.drop(key) // retrying the same patch cannot succeed
		logger.Error(err, "network-status rejected; dropped")
	case ctx.Err() != nil:
		// Shutting down: the write was cut short, not failed.
	default:
		attempt := p.queue.NumRequeues(key) + 1
		p.queue.AddRateLimited(key)
		if attempt == reportRetries {
			logger.Error(err, "network-status still not written; retrying with backoff", "attempts", attempt)
		} else {
			logger.V(2).Info("network-status not written; retrying", "err", err, "attempt", attempt)
		}
	}
	return true
}

// drop forgets the pod: its pending status and its retry count.
func (p *PodStatuses) drop(key PodKey) {
	p.mu.Lock()
	delete(p.pending, key)
	p.mu.Unlock()
	p.queue.Forget(key)
}

// write patches the pod's annotation. The patch names the pod's UID, which
// the API server checks as a precondition: a pod recreated under the same
// name fails it with a Conflict instead of getting this pod's status.
func (p *PodStatuses) write(ctx context.Context, key PodKey, status string) error {
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"uid":         key.UID,
		"annotations": map[string]any{netrequest.StatusAnnotationKey: status},
	}})
	if err != nil {
		return fmt.Errorf("encode network-status patch: %w", err)
	}
	if _, err := p.client.Resource(Pods).Namespace(key.Namespace).Patch(ctx, key.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil {
		return fmt.Errorf("patch pod %s: %w", key, err)
	}
	return nil
}
