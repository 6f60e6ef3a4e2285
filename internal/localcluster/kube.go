package localcluster

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

var httpClient = &http.Client{Timeout: 2 * time.Second}

// Client returns a clientset for the cluster admin.
func (o *Options) Client() (kubernetes.Interface, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", o.Kubeconfig())
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 100, 200
	return kubernetes.NewForConfig(cfg)
}

// WaitNodesReady waits until every node is registered and Ready.
func (o *Options) WaitNodesReady(ctx context.Context, cs kubernetes.Interface) error {
	var last string
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		var notReady []string
		for _, n := range o.nodes() {
			node, err := cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				notReady = append(notReady, n.Name+" (not registered)")
				continue
			}
			if !nodeReady(node) {
				notReady = append(notReady, n.Name)
			}
		}
		last = strings.Join(notReady, ", ")
		return len(notReady) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("nodes not Ready: %s: %w", last, err)
	}
	return nil
}

// waitDefaultServiceAccount waits for the controller-manager to create the
// default namespace's ServiceAccount: until then every pod is rejected.
func waitDefaultServiceAccount(ctx context.Context, cs kubernetes.Interface) error {
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		_, err := cs.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, nil
	})
	if err != nil {
		return fmt.Errorf("default service account not created (kube-controller-manager): %w", err)
	}
	return nil
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// ToolboxPod returns a pod running the toolbox image on the given node
// (selected by the scheduler through the hostname label).
func (o *Options) ToolboxPod(name, node string) (*corev1.Pod, error) {
	image, err := o.ToolboxImage()
	if err != nil {
		return nil, err
	}
	zero := int64(0)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "toolbox"}},
		Spec: corev1.PodSpec{
			NodeSelector:                  map[string]string{corev1.LabelHostname: node},
			TerminationGracePeriodSeconds: &zero,
			Containers: []corev1.Container{{
				Name:            "toolbox",
				Image:           image,
				ImagePullPolicy: corev1.PullNever,
				Command:         []string{"/bin/sh", "-c", "trap 'exit 0' TERM; sleep 86400 & wait"},
			}},
		},
	}, nil
}

// WaitPodRunning waits until the pod is Running and returns it.
func WaitPodRunning(ctx context.Context, cs kubernetes.Interface, namespace, name string) (*corev1.Pod, error) {
	var pod *corev1.Pod
	var last string
	err := wait.PollUntilContextCancel(ctx, 100*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		p, err := cs.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			last = "not found"
			return false, nil
		}
		if err != nil {
			return false, err
		}
		pod, last = p, string(p.Status.Phase)
		if p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded {
			return false, fmt.Errorf("pod %s/%s ended: %s", namespace, name, p.Status.Phase)
		}
		return p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "", nil
	})
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s not Running (%s): %w", namespace, name, last, err)
	}
	return pod, nil
}

// Kubectl runs the built kubectl against the cluster and returns its output.
func (o *Options) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, o.kubeBin("kubectl"), append([]string{"--kubeconfig", o.Kubeconfig()}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// PodIPv4 returns the IPv4 address of eth0 as seen from inside the pod.
func (o *Options) PodIPv4(ctx context.Context, namespace, name string) (string, error) {
	out, err := o.Kubectl(ctx, "exec", "-n", namespace, name, "--", "ip", "-4", "-o", "addr", "show", "dev", "eth0")
	if err != nil {
		return "", err
	}
	return parseIPAddr(out)
}

// parseIPAddr takes the address out of `ip -4 -o addr show` output.
func parseIPAddr(out string) (string, error) {
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "inet" {
			addr, _, _ := strings.Cut(f[i+1], "/")
			return addr, nil
		}
	}
	return "", fmt.Errorf("no IPv4 address in %q", strings.TrimSpace(out))
}
