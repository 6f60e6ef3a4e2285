package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"

	"sigs.k8s.io/pod-networks/internal/poll"
)

const benchNamespace = "default"

// result is one round of one arm.
type result struct {
	rate   float64 // pods bound per second, first bind to last
	writes writes  // apiserver writes from the first pod created to the last bind settled
}

// round creates the pods of one arm, waits for what must exist before they
// can be scheduled (the dra arm's claims), starts the arm's scheduler, and
// measures the bind throughput and the writes the round made.
func round(ctx context.Context, cs kubernetes.Interface, cp *controlPlane, o options, dir string, r int, a arm) (result, error) {
	ns := benchNamespace
	sel := metav1.ListOptions{LabelSelector: "bench=" + a.name}
	before, err := settledWrites(ctx, cs)
	if err != nil {
		return result{}, err
	}
	if err := parallel(ctx, o.pods, 32, func(i int) error {
		_, err := create(ctx, cs, "pods", ns, benchPod(fmt.Sprintf("%s-%05d", a.name, i), a.name), a.pod, a.check...)
		return err
	}); err != nil {
		return result{}, err
	}
	if a.claims {
		if err := waitClaimsMade(ctx, cs, sel, o.pods); err != nil {
			return result{}, err
		}
	}
	conf := filepath.Join(dir, "scheduler-"+a.name+".yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(schedulerConfig, cp.kubeconfig, a.name)), 0o644); err != nil {
		return result{}, err
	}
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, sel)
	if err != nil {
		return result{}, err
	}
	defer func() { w.Stop() }()
	rv := ""
	logFile := filepath.Join(dir, fmt.Sprintf("scheduler-%d-%s.log", r+1, a.name))
	log, err := os.Create(logFile)
	if err != nil {
		return result{}, err
	}
	defer log.Close()
	cmd := exec.CommandContext(ctx, a.scheduler, append([]string{"--config=" + conf, "--secure-port=0", fmt.Sprintf("--v=%d", o.verbosity)}, a.flags...)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return result{}, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	bound := map[string]bool{}
	var first, last time.Time
	timeout := time.After(o.timeout)
	for len(bound) < o.pods {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok { // the apiserver ends watches now and then: resume
				sel.ResourceVersion = rv
				if w, err = cs.CoreV1().Pods(ns).Watch(ctx, sel); err != nil {
					return result{}, fmt.Errorf("resume watch: %w", err)
				}
				continue
			}
			if ev.Type != watch.Modified && ev.Type != watch.Added {
				continue
			}
			p, ok := ev.Object.(*corev1.Pod)
			if !ok {
				continue
			}
			rv = p.ResourceVersion
			if p.Spec.NodeName == "" || bound[p.Name] {
				continue
			}
			if a.needsX && !hasX(o, p.Spec.NodeName) {
				return result{}, fmt.Errorf("pod %s bound to %s, which lacks network x", p.Name, p.Spec.NodeName)
			}
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			last = now
			bound[p.Name] = true
		case <-timeout:
			return result{}, fmt.Errorf("%d of %d pods bound after %v%s (scheduler log %s)", len(bound), o.pods, o.timeout, whyPending(ctx, cs, sel), logFile)
		case <-ctx.Done():
			return result{}, ctx.Err()
		}
	}
	res := result{rate: float64(o.pods-1) / last.Sub(first).Seconds()}
	after, err := settledWrites(ctx, cs)
	if err != nil {
		return result{}, err
	}
	res.writes = after.sub(before)
	if a.claims {
		if err := checkAllocations(ctx, cs, o); err != nil {
			return result{}, err
		}
	}
	// The next arm's scheduler must not see these pods, nor their claims.
	zero := int64(0)
	if err := cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, sel); err != nil {
		return result{}, err
	}
	if a.claims { // what the garbage collector does once the pods are gone
		if err := cs.ResourceV1().ResourceClaims(ns).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{}); err != nil {
			return result{}, err
		}
	}
	err = poll.Until(ctx, 200*time.Millisecond, 2*time.Minute, func(ctx context.Context) error {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, sel)
		if err != nil {
			return err
		}
		claims, err := cs.ResourceV1().ResourceClaims(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		if n, m := len(pods.Items), len(claims.Items); n+m > 0 {
			return fmt.Errorf("%d pods and %d claims left", n, m)
		}
		return nil
	})
	return res, err
}

// waitClaimsMade waits until the resourceclaim controller has made the
// claim of each of the arm's pods and recorded it in the pod's status.
func waitClaimsMade(ctx context.Context, cs kubernetes.Interface, sel metav1.ListOptions, pods int) error {
	return poll.Until(ctx, 500*time.Millisecond, 2*time.Minute, func(ctx context.Context) error {
		l, err := cs.CoreV1().Pods(benchNamespace).List(ctx, sel)
		if err != nil {
			return err
		}
		made := 0
		for _, p := range l.Items {
			if len(p.Status.ResourceClaimStatuses) == 1 && p.Status.ResourceClaimStatuses[0].ResourceClaimName != nil {
				made++
			}
		}
		if made < pods {
			return fmt.Errorf("claims of %d of %d pods made", made, pods)
		}
		return nil
	})
}

// checkAllocations checks that every claim was allocated network x on the
// node its pod was bound to, and reserved for that pod.
func checkAllocations(ctx context.Context, cs kubernetes.Interface, o options) error {
	claims, err := cs.ResourceV1().ResourceClaims(benchNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	if len(claims.Items) != o.pods {
		return fmt.Errorf("%d claims for %d pods", len(claims.Items), o.pods)
	}
	for _, c := range claims.Items {
		al := c.Status.Allocation
		if al == nil || len(al.Devices.Results) != 1 || len(c.Status.ReservedFor) != 1 {
			return fmt.Errorf("claim %s: not allocated and reserved for one pod: %+v", c.Name, c.Status)
		}
		d := al.Devices.Results[0]
		if d.Device != "x" || !hasX(o, d.Pool) {
			return fmt.Errorf("claim %s: allocated device %s/%s, not network x of a node with x", c.Name, d.Pool, d.Device)
		}
	}
	return nil
}

// whyPending returns the scheduling condition of a pending pod, if any.
func whyPending(ctx context.Context, cs kubernetes.Interface, sel metav1.ListOptions) string {
	sel.ResourceVersion = ""
	l, err := cs.CoreV1().Pods("default").List(ctx, sel)
	if err != nil {
		return ""
	}
	for _, p := range l.Items {
		for _, c := range p.Status.Conditions {
			if p.Spec.NodeName == "" && c.Type == corev1.PodScheduled {
				return fmt.Sprintf("; pod %s: %s: %s", p.Name, c.Reason, c.Message)
			}
		}
	}
	return ""
}

// hasX reports whether node fake-NNNNN has network x.
func hasX(o options, node string) bool {
	var i int
	if _, err := fmt.Sscanf(node, "fake-%05d", &i); err != nil {
		return false
	}
	return i%(100/o.withPercent) == 0
}

// schedulerConfig has one profile with the default plugins: with the
// PodNetworks gate on, NodeNetworks is one of them.
const schedulerConfig = `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
  qps: 5000
  burst: 5000
leaderElection:
  leaderElect: false
profiles:
- schedulerName: %s
`

func benchPod(name, arm string) *corev1.Pod {
	return &corev1.Pod{ // the arm's pod func adds its request
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"bench": arm}},
		Spec: corev1.PodSpec{
			SchedulerName: arm,
			Containers: []corev1.Container{{Name: "c", Image: "localhost/none:v1",
				Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")}}}},
		},
	}
}

// parallel calls fn(0..n-1) on workers goroutines and returns the first error.
func parallel(ctx context.Context, n, workers int, fn func(int) error) error {
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := fn(i); err != nil {
					select {
					case errc <- err:
					default:
					}
				}
			}
		}()
	}
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case err := <-errc:
			close(next)
			wg.Wait()
			return err
		case <-ctx.Done():
			close(next)
			wg.Wait()
			return ctx.Err()
		}
	}
	close(next)
	wg.Wait()
	select {
	case err := <-errc:
		return err
	default:
		return nil
	}
}
