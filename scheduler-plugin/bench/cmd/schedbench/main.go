// Command schedbench measures what the NodeNetworks plugin costs the
// scheduler: on the local cluster's real apiserver it creates 5000 nodes, 20%
// of them with network x, and pods requesting x, and times how fast one
// pod-networks-scheduler process binds them with a profile that has the
// plugin and with the default profile, in alternating rounds of one run. It
// prints pods/s of both and their ratio (target ≥ 0.95).
//
// Per round and profile, the pods are created while no scheduler serves
// their profile, then the scheduler is started and the throughput is the
// number of pods bound over the time from the first bind to the last, so
// neither pod creation nor scheduler start-up is measured.
//
//	schedbench [-nodes 5000] [-pods 1000] [-rounds 3] [-strict]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"sigs.k8s.io/pod-networks/internal/localcluster"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

const target = 0.95

type options struct {
	outputDir           string
	nodes, pods, rounds int
	withPercent         int
	strict              bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintf(os.Stderr, "schedbench: %v\n", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("schedbench", flag.ContinueOnError)
	var o options
	fs.StringVar(&o.outputDir, "output-dir", "_output", "the repository's build output dir")
	fs.IntVar(&o.nodes, "nodes", 5000, "nodes to create")
	fs.IntVar(&o.withPercent, "with-x", 20, "percent of the nodes that have network x")
	fs.IntVar(&o.pods, "pods", 1000, "pods per round and profile")
	fs.IntVar(&o.rounds, "rounds", 3, "rounds; each times both profiles")
	fs.BoolVar(&o.strict, "strict", false, "exit non-zero when the target is missed")
	if err := fs.Parse(args); err != nil {
		return err
	}
	out, err := filepath.Abs(o.outputDir)
	if err != nil {
		return err
	}
	lo := localcluster.DefaultOptions(out)
	lo.Nodes = 1
	lo.NodeNetworks = nil
	lo.Logf = func(string, ...any) {}
	fmt.Println("bringing up the local control plane (1 real node)...")
	c, err := localcluster.Up(ctx, lo)
	if err != nil {
		return err
	}
	defer func() {
		fmt.Println("tearing down...")
		_ = localcluster.Down(context.WithoutCancel(ctx), lo)
	}()
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig())
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 2000, 4000
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := createNodes(ctx, cs, o); err != nil {
		return err
	}
	fmt.Printf("created %d nodes (%d%% with network x) in %.1fs\n", o.nodes, o.withPercent, time.Since(start).Seconds())

	dir, err := os.MkdirTemp("", "schedbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	conf := filepath.Join(dir, "config.yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(schedulerConfig, c.Kubeconfig())), 0o644); err != nil {
		return err
	}
	sched := filepath.Join(c.BinDir, "pod-networks-scheduler")
	rates := map[string][]float64{}
	profiles := []string{"bench-networks", "bench-default"}
	for r := range o.rounds {
		order := slices.Clone(profiles)
		if r%2 == 1 {
			slices.Reverse(order)
		}
		for _, p := range order {
			rate, err := round(ctx, cs, o, sched, conf, filepath.Join(dir, fmt.Sprintf("sched-%d-%s.log", r, p)), p)
			if err != nil {
				return fmt.Errorf("round %d, profile %s: %w", r+1, p, err)
			}
			fmt.Printf("  round %d %-15s %7.1f pods/s\n", r+1, p, rate)
			rates[p] = append(rates[p], rate)
		}
	}
	with, without := median(rates["bench-networks"]), median(rates["bench-default"])
	ratio := with / without
	verdict := "PASS"
	if ratio < target {
		verdict = "FAIL"
	}
	fmt.Printf("\n%d nodes (%d%% with x), %d pods requesting x per round, %d rounds, medians:\n", o.nodes, o.withPercent, o.pods, o.rounds)
	fmt.Printf("  default profile:            %7.1f pods/s\n", without)
	fmt.Printf("  profile with NodeNetworks:  %7.1f pods/s\n", with)
	fmt.Printf("  ratio: %.3f (target ≥ %.2f) %s\n", ratio, target, verdict)
	if o.strict && ratio < target {
		return errors.New("target missed")
	}
	return nil
}

// schedulerConfig has two profiles that differ only by the plugin.
const schedulerConfig = `apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: %q
  qps: 5000
  burst: 5000
leaderElection:
  leaderElect: false
profiles:
- schedulerName: bench-default
- schedulerName: bench-networks
  plugins:
    multiPoint:
      enabled:
      - name: NodeNetworks
    filter:
      enabled:
      - name: NodeNetworks
`

func createNodes(ctx context.Context, cs kubernetes.Interface, o options) error {
	every := 100 / o.withPercent
	return parallel(ctx, o.nodes, 32, func(i int) error {
		nets := "a,b"
		if i%every == 0 {
			nets = "a,b,x"
		}
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("fake-%05d", i), Labels: map[string]string{"bench": "fake"},
				Annotations: map[string]string{netrequest.AnnotationKey: nets}},
			Status: corev1.NodeStatus{
				Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("110")},
				Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("110")},
				Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
			},
		}
		_, err := cs.CoreV1().Nodes().Create(ctx, n, metav1.CreateOptions{})
		return err
	})
}

// round creates the pods of one profile, starts the scheduler, and returns
// the bind throughput.
func round(ctx context.Context, cs kubernetes.Interface, o options, sched, conf, logFile, profile string) (float64, error) {
	ns := "default"
	if err := parallel(ctx, o.pods, 32, func(i int) error {
		_, err := cs.CoreV1().Pods(ns).Create(ctx, benchPod(fmt.Sprintf("%s-%05d", profile, i), profile), metav1.CreateOptions{})
		return err
	}); err != nil {
		return 0, err
	}
	sel := metav1.ListOptions{LabelSelector: "bench=" + profile}
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, sel)
	if err != nil {
		return 0, err
	}
	defer func() { w.Stop() }()
	rv := ""
	log, err := os.Create(logFile)
	if err != nil {
		return 0, err
	}
	defer log.Close()
	cmd := exec.CommandContext(ctx, sched, "--config="+conf, "--secure-port=0", "--v=0")
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	bound := map[string]bool{}
	var first, last time.Time
	timeout := time.After(5 * time.Minute)
	for len(bound) < o.pods {
		select {
		case ev, ok := <-w.ResultChan():
			if !ok { // the apiserver ends watches now and then: resume
				sel.ResourceVersion = rv
				if w, err = cs.CoreV1().Pods(ns).Watch(ctx, sel); err != nil {
					return 0, fmt.Errorf("resume watch: %w", err)
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
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			last = now
			bound[p.Name] = true
		case <-timeout:
			return 0, fmt.Errorf("%d of %d pods bound after 5 minutes (scheduler log %s)", len(bound), o.pods, logFile)
		}
	}
	rate := float64(o.pods-1) / last.Sub(first).Seconds()
	zero := int64(0)
	if err := cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero},
		metav1.ListOptions{LabelSelector: "bench=" + profile}); err != nil {
		return 0, err
	}
	return rate, nil
}

func benchPod(name, profile string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"bench": profile},
			Annotations: map[string]string{netrequest.AnnotationKey: "x"}},
		Spec: corev1.PodSpec{
			SchedulerName: profile,
			NodeSelector:  map[string]string{"bench": "fake"},
			// The fake nodes have no kubelet: the node lifecycle controller
			// taints them; the pods are only ever bound.
			Tolerations: []corev1.Toleration{{Operator: corev1.TolerationOpExists}},
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

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
