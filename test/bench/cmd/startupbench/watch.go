package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	watchtools "k8s.io/client-go/tools/watch"
)

// podWatch follows the benchmark's pods through one watch that resumes
// where it left off when the apiserver closes it (client-go's
// RetryWatcher). Its own goroutine drains the watch and stamps each event
// with the client's clock as it arrives, so a reader busy elsewhere never
// delays a stamp.
type podWatch struct {
	stopWatch func()

	mu      sync.Mutex
	pods    map[types.UID]*podSeen
	err     error         // why the watch ended, once it has
	changed chan struct{} // closed and replaced on every event
}

// podSeen is one pod as the watch saw it.
type podSeen struct {
	pod          *corev1.Pod // the latest version
	bound, ready time.Time   // when first seen bound to a node, Ready
	gone         bool
}

// watchPods starts following the pods of namespace that match selector.
func watchPods(ctx context.Context, cs kubernetes.Interface, namespace, selector string) (*podWatch, error) {
	list, err := cs.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, fmt.Errorf("list pods %s in namespace %s: %w", selector, namespace, err)
	}
	lw := &cache.ListWatch{WatchFuncWithContext: func(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
		opts.LabelSelector = selector
		return cs.CoreV1().Pods(namespace).Watch(ctx, opts)
	}}
	rw, err := watchtools.NewRetryWatcherWithContext(ctx, list.ResourceVersion, lw)
	if err != nil {
		return nil, fmt.Errorf("watch pods %s in namespace %s: %w", selector, namespace, err)
	}
	w := &podWatch{stopWatch: rw.Stop, pods: map[types.UID]*podSeen{}, changed: make(chan struct{})}
	go w.follow(rw.ResultChan())
	return w, nil
}

func (w *podWatch) stop() { w.stopWatch() }

// follow records events until the watch ends. The RetryWatcher sends an
// error event only when it cannot resume (the resource version is gone):
// events may have been missed, so the benchmark stops.
func (w *podWatch) follow(events <-chan watch.Event) {
	for ev := range events {
		now := time.Now()
		if ev.Type == watch.Error {
			w.update(func() { w.err = fmt.Errorf("pod watch failed: %w", apierrors.FromObject(ev.Object)) })
			continue
		}
		pod, ok := ev.Object.(*corev1.Pod)
		if !ok {
			continue
		}
		w.update(func() {
			s := w.pods[pod.UID]
			if s == nil {
				s = &podSeen{}
				w.pods[pod.UID] = s
			}
			s.pod = pod
			if s.bound.IsZero() && pod.Spec.NodeName != "" {
				s.bound = now
			}
			if s.ready.IsZero() && podReady(pod) {
				s.ready = now
			}
			if ev.Type == watch.Deleted {
				s.gone = true
			}
		})
	}
	w.update(func() {
		if w.err == nil {
			w.err = errors.New("pod watch ended")
		}
	})
}

func (w *podWatch) update(f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	f()
	close(w.changed)
	w.changed = make(chan struct{})
}

// get returns a copy of what the watch saw of the pod, nil if nothing.
func (w *podWatch) get(uid types.UID) *podSeen {
	w.mu.Lock()
	defer w.mu.Unlock()
	if s := w.pods[uid]; s != nil {
		c := *s
		return &c
	}
	return nil
}

// wait returns once cond, called with the pod as the watch saw it (nil
// before its first event) on every event, returns "" and no error. An
// error of cond ends the wait with it; a non-empty string is why the pod
// is not there yet, which the error of a timeout gives.
func (w *podWatch) wait(ctx context.Context, uid types.UID, timeout time.Duration, cond func(*podSeen) (string, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		w.mu.Lock()
		changed, werr := w.changed, w.err
		w.mu.Unlock()
		// Read after changed: an event in between closes changed.
		why, err := cond(w.get(uid))
		switch {
		case err != nil:
			return err
		case why == "":
			return nil
		case werr != nil:
			return fmt.Errorf("%w (while waiting: %s)", werr, why)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("%w after %v: %s", ctx.Err(), timeout, why)
		}
	}
}

// forget drops a pod that is gone.
func (w *podWatch) forget(uid types.UID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.pods, uid)
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
