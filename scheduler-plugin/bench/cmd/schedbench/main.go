// Command schedbench measures what placing pods by network costs the
// scheduler. It starts its own etcd and kube-apiserver (the patched one,
// with the PodNetworks gate on), creates 5000 nodes, 20% of them with
// network x (in status.networks, and a label), and times how fast a
// scheduler binds 1000 pods, in three arms:
//
//   - native: the patched kube-scheduler with --feature-gates=PodNetworks=true,
//     whose default profile has the in-tree NodeNetworks plugin; pods ask
//     for x in spec.networks;
//   - selector: what users do today for the same placement: the default
//     profile of the stock kube-scheduler; pods have a nodeSelector on the
//     label of the nodes with x;
//   - default: the same, pods unconstrained (any node fits), for scale.
//
// Per round and arm the pods are created while no scheduler serves their
// scheduler name, then the arm's scheduler is started and the throughput is
// the number of pods bound over the time from the first bind to the last,
// so neither pod creation nor scheduler start-up is measured. Rounds rotate
// the arms' order. It prints every round, min/median/max per arm, and the
// ratio of native to selector (target ≥ 0.95).
//
// Nothing runs as root, and nothing listens but on free loopback ports:
// it does not disturb a local cluster.
//
//	schedbench [-nodes 5000] [-pods 1000] [-rounds 5] [-strict]
package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const target = 0.95

// labelX marks the nodes with network x, for the selector arm.
const labelX = "bench.pod-networks.x-k8s.io/network-x"

type options struct {
	outputDir                 string
	etcd, apiserver           string
	scheduler, stockScheduler string
	nodes, pods, rounds       int
	withPercent               int
	strict, keep              bool
	timeout                   time.Duration
	verbosity                 int
}

// arm is one way of placing the pods.
type arm struct {
	name      string // also the pods' schedulerName and label
	what      string
	scheduler string   // binary
	flags     []string // extra scheduler flags
	// pod sets the arm's request on a pod, as JSON: this repository's
	// k8s.io/api is the stock one, without spec.networks.
	pod func(map[string]any)
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
	fs.StringVar(&o.outputDir, "output-dir", "_output", "the repository's build output dir: binaries default to its bin/ (stock) and bin/patched/")
	fs.StringVar(&o.etcd, "etcd", "", "etcd binary (default <output-dir>/bin/etcd)")
	fs.StringVar(&o.apiserver, "apiserver", "", "kube-apiserver with the PodNetworks API (default <output-dir>/bin/patched/kube-apiserver)")
	fs.StringVar(&o.scheduler, "scheduler", "", "kube-scheduler with the in-tree NodeNetworks plugin, for the native arm (default <output-dir>/bin/patched/kube-scheduler)")
	fs.StringVar(&o.stockScheduler, "stock-scheduler", "", "kube-scheduler for the selector and default arms (default <output-dir>/bin/kube-scheduler)")
	fs.IntVar(&o.nodes, "nodes", 5000, "nodes to create")
	fs.IntVar(&o.withPercent, "with-x", 20, "percent of the nodes that have network x (a divisor of 100)")
	fs.IntVar(&o.pods, "pods", 1000, "pods per round and arm")
	fs.IntVar(&o.rounds, "rounds", 5, "rounds; each times every arm")
	fs.BoolVar(&o.strict, "strict", false, "exit non-zero when the target is missed")
	fs.BoolVar(&o.keep, "keep", false, "keep the work dir (logs, etcd data)")
	fs.DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long a round may take")
	fs.IntVar(&o.verbosity, "scheduler-v", 0, "the schedulers' --v")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.withPercent < 1 || 100%o.withPercent != 0 {
		return fmt.Errorf("-with-x %d: must divide 100", o.withPercent)
	}
	out, err := filepath.Abs(o.outputDir)
	if err != nil {
		return err
	}
	def := func(p *string, rel string) {
		if *p == "" {
			*p = filepath.Join(out, "bin", rel)
		}
	}
	def(&o.etcd, "etcd")
	def(&o.apiserver, "patched/kube-apiserver")
	def(&o.scheduler, "patched/kube-scheduler")
	def(&o.stockScheduler, "kube-scheduler")
	for _, b := range []string{o.etcd, o.apiserver, o.scheduler, o.stockScheduler} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%w (make build builds it)", err)
		}
	}

	dir, err := os.MkdirTemp("", "schedbench-")
	if err != nil {
		return err
	}
	defer func() {
		if o.keep {
			fmt.Println("work dir kept:", dir)
		} else {
			os.RemoveAll(dir)
		}
	}()
	fmt.Println("starting etcd and kube-apiserver (PodNetworks=true)...")
	cp, err := startControlPlane(ctx, o, dir)
	if err != nil {
		return err
	}
	defer cp.stop()
	cs, err := kubernetes.NewForConfig(cp.config)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := createNodes(ctx, cs, o); err != nil {
		return err
	}
	fmt.Printf("created %d nodes (%d%% with network x) in %.1fs\n", o.nodes, o.withPercent, time.Since(start).Seconds())

	arms := []arm{
		{name: "native", what: "spec.networks, in-tree NodeNetworks in the default profile",
			scheduler: o.scheduler, flags: []string{"--feature-gates=PodNetworks=true"},
			pod: func(spec map[string]any) { spec["networks"] = []map[string]string{{"name": "x"}} }},
		{name: "selector", what: "nodeSelector, default profile",
			scheduler: o.stockScheduler,
			pod:       func(spec map[string]any) { spec["nodeSelector"] = map[string]string{labelX: "true"} }},
		{name: "default", what: "unconstrained, default profile",
			scheduler: o.stockScheduler, pod: func(map[string]any) {}},
	}
	for _, a := range arms {
		fmt.Printf("  %-9s %s\n            %s\n", a.name, a.what, strings.Join(append([]string{a.scheduler}, a.flags...), " "))
	}
	rates := map[string][]float64{}
	for r := range o.rounds {
		for i := range arms {
			a := arms[(i+r)%len(arms)] // rotate the order
			rate, err := round(ctx, cs, cp, o, dir, r, a)
			if err != nil {
				return fmt.Errorf("round %d, arm %s: %w", r+1, a.name, err)
			}
			fmt.Printf("  round %d %-9s %7.1f pods/s\n", r+1, a.name, rate)
			rates[a.name] = append(rates[a.name], rate)
		}
	}

	fmt.Printf("\n%d nodes (%d%% with x), %d pods per round and arm, %d rounds; pods/s min / median / max:\n",
		o.nodes, o.withPercent, o.pods, o.rounds)
	for _, a := range arms {
		v := rates[a.name]
		fmt.Printf("  %-9s %7.1f / %7.1f / %7.1f   %s\n", a.name, slices.Min(v), median(v), slices.Max(v), a.what)
	}
	var perRound []float64
	for i := range rates["native"] {
		perRound = append(perRound, rates["native"][i]/rates["selector"][i])
	}
	ratio := median(rates["native"]) / median(rates["selector"])
	verdict := "PASS"
	if ratio < target {
		verdict = "FAIL"
	}
	fmt.Printf("  native / selector: %.3f (medians; per round min %.3f, median %.3f, max %.3f), target ≥ %.2f: %s\n",
		ratio, slices.Min(perRound), median(perRound), slices.Max(perRound), target, verdict)
	if o.strict && ratio < target {
		return errors.New("target missed")
	}
	return nil
}

// controlPlane is etcd and kube-apiserver, started by startControlPlane.
type controlPlane struct {
	config     *rest.Config
	kubeconfig string
	procs      []*exec.Cmd
}

func (c *controlPlane) stop() {
	for _, p := range slices.Backward(c.procs) {
		_ = p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
}

// startControlPlane starts etcd and kube-apiserver on free loopback ports,
// with a static admin token, and waits until the apiserver is ready.
func startControlPlane(ctx context.Context, o options, dir string) (cp *controlPlane, err error) {
	cp = &controlPlane{}
	defer func() {
		if err != nil {
			cp.stop()
		}
	}()
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	if err := cp.start(ctx, dir, "etcd", o.etcd,
		"--name=bench", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=bench="+peerURL, "--unsafe-no-fsync", "--log-level=warn"); err != nil {
		return nil, err
	}
	token := rand.Text()
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return nil, err
	}
	saKey := filepath.Join(dir, "sa.key")
	if err := writeRSAKey(saKey); err != nil {
		return nil, err
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	if err := cp.start(ctx, dir, "kube-apiserver", o.apiserver,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", ports[2]),
		"--cert-dir="+filepath.Join(dir, "apiserver-certs"),
		"--token-auth-file="+tokens, "--authorization-mode=AlwaysAllow",
		// No controller-manager makes service accounts or lifts the
		// not-ready taint TaintNodesByCondition puts on new nodes.
		"--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+saKey, "--service-account-signing-key-file="+saKey,
		"--endpoint-reconciler-type=none", "--profiling=false",
		"--feature-gates=PodNetworks=true"); err != nil {
		return nil, err
	}
	cp.config = &rest.Config{Host: server, BearerToken: token, QPS: 2000, Burst: 4000,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true}} // the apiserver's self-signed certificate, on loopback
	cp.kubeconfig = filepath.Join(dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: %q}
contexts:
- name: bench
  context: {cluster: bench, user: admin}
current-context: bench
`, server, token)
	if err := os.WriteFile(cp.kubeconfig, []byte(kc), 0o600); err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // #nosec: loopback, self-signed
	deadline := time.Now().Add(90 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, server+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cp, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("kube-apiserver not ready after 90s: %v (log %s)", err, filepath.Join(dir, "kube-apiserver.log"))
		}
		for _, p := range cp.procs {
			if p.ProcessState != nil {
				return nil, fmt.Errorf("%s exited: %s (log %s)", filepath.Base(p.Path), p.ProcessState, filepath.Join(dir, filepath.Base(p.Path)+".log"))
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// start runs a daemon with its output in dir/<name>.log.
func (c *controlPlane) start(ctx context.Context, dir, name, bin string, args ...string) error {
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	log.Close()
	c.procs = append(c.procs, cmd)
	go func() { <-ctx.Done(); _ = cmd.Process.Signal(syscall.SIGTERM) }()
	return nil
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func writeRSAKey(path string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
}

func createNodes(ctx context.Context, cs kubernetes.Interface, o options) error {
	every := 100 / o.withPercent
	return parallel(ctx, o.nodes, 32, func(i int) error {
		n := &corev1.Node{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("fake-%05d", i), Labels: map[string]string{"bench": "fake"}},
			Status: corev1.NodeStatus{
				Allocatable: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("110")},
				Capacity:    corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("32"), corev1.ResourceMemory: resource.MustParse("256Gi"), corev1.ResourcePods: resource.MustParse("110")},
				Conditions:  []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}},
				// As a patched kubelet with the gate on declares it: pods
				// with spec.networks need it (NodeDeclaredFeatures).
				DeclaredFeatures: []string{"PodNetworks"},
			},
		}
		networks := []string{"a", "b"}
		if i%every == 0 {
			n.Labels[labelX] = "true"
			networks = append(networks, "x")
		}
		_, err := create(ctx, cs, "nodes", "", n, func(obj map[string]any) {
			obj["status"].(map[string]any)["networks"] = networks
		}, "status", "networks")
		return err
	})
}

// create posts obj as JSON, changed by edit, and checks that the stored
// object still has the field at path: the apiserver drops the native
// fields when it is not the patched one or the gate is off.
func create(ctx context.Context, cs kubernetes.Interface, resource, namespace string, obj any, edit func(map[string]any), path ...string) (map[string]any, error) {
	b, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	edit(m)
	if b, err = json.Marshal(m); err != nil {
		return nil, err
	}
	req := cs.CoreV1().RESTClient().Post().Resource(resource).Body(b)
	if namespace != "" {
		req = req.Namespace(namespace)
	}
	raw, err := req.Do(ctx).Raw()
	if err != nil {
		return nil, err
	}
	var stored map[string]any
	if err := json.Unmarshal(raw, &stored); err != nil {
		return nil, err
	}
	v := any(stored)
	for _, k := range path {
		if mm, ok := v.(map[string]any); ok {
			v = mm[k]
		} else {
			v = nil
		}
	}
	if len(path) > 0 && v == nil {
		return nil, fmt.Errorf("%s: %v was dropped: is the apiserver patched, with PodNetworks=true?", resource, path)
	}
	return stored, nil
}

// round creates the pods of one arm, starts its scheduler, and returns the
// bind throughput.
func round(ctx context.Context, cs kubernetes.Interface, cp *controlPlane, o options, dir string, r int, a arm) (float64, error) {
	ns := "default"
	if err := parallel(ctx, o.pods, 32, func(i int) error {
		var check []string
		if a.name == "native" {
			check = []string{"spec", "networks"}
		}
		_, err := create(ctx, cs, "pods", ns, benchPod(fmt.Sprintf("%s-%05d", a.name, i), a.name), func(obj map[string]any) {
			a.pod(obj["spec"].(map[string]any))
		}, check...)
		return err
	}); err != nil {
		return 0, err
	}
	conf := filepath.Join(dir, "scheduler-"+a.name+".yaml")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(schedulerConfig, cp.kubeconfig, a.name)), 0o644); err != nil {
		return 0, err
	}
	sel := metav1.ListOptions{LabelSelector: "bench=" + a.name}
	w, err := cs.CoreV1().Pods(ns).Watch(ctx, sel)
	if err != nil {
		return 0, err
	}
	defer func() { w.Stop() }()
	rv := ""
	logFile := filepath.Join(dir, fmt.Sprintf("scheduler-%d-%s.log", r+1, a.name))
	log, err := os.Create(logFile)
	if err != nil {
		return 0, err
	}
	defer log.Close()
	cmd := exec.CommandContext(ctx, a.scheduler, append([]string{"--config=" + conf, "--secure-port=0", fmt.Sprintf("--v=%d", o.verbosity)}, a.flags...)...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return 0, err
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
			if a.name != "default" && !hasX(o, p.Spec.NodeName) {
				return 0, fmt.Errorf("pod %s bound to %s, which lacks network x", p.Name, p.Spec.NodeName)
			}
			now := time.Now()
			if first.IsZero() {
				first = now
			}
			last = now
			bound[p.Name] = true
		case <-timeout:
			return 0, fmt.Errorf("%d of %d pods bound after %v%s (scheduler log %s)", len(bound), o.pods, o.timeout, whyPending(ctx, cs, sel), logFile)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	rate := float64(o.pods-1) / last.Sub(first).Seconds()
	zero := int64(0)
	if err := cs.CoreV1().Pods(ns).DeleteCollection(ctx, metav1.DeleteOptions{GracePeriodSeconds: &zero}, sel); err != nil {
		return 0, err
	}
	for { // the next arm's scheduler must not see these pods
		l, err := cs.CoreV1().Pods(ns).List(ctx, sel)
		if err != nil {
			return 0, err
		}
		if len(l.Items) == 0 {
			return rate, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
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
	return &corev1.Pod{
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

func median(v []float64) float64 {
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
