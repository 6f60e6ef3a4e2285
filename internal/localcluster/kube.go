package localcluster

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"sigs.k8s.io/pod-networks/internal/poll"
)

// Kubeconfig is the path of the cluster admin's kubeconfig.
func (c *Cluster) Kubeconfig() string { return c.l.kubeconfig("admin") }

// NodeList lists the cluster's nodes in order.
func (c *Cluster) NodeList() []Node { return append([]Node(nil), c.l.nodes...) }

// Client returns a clientset for the cluster admin.
func (c *Cluster) Client() (kubernetes.Interface, error) { return c.l.client() }

// RESTConfig is the admin's client configuration, for other clients
// (dynamic, for fields the stock API types lack).
func (c *Cluster) RESTConfig() (*rest.Config, error) { return c.l.restConfig() }

func (l layout) restConfig() (*rest.Config, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", l.kubeconfig("admin"))
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = 100, 200
	return cfg, nil
}

func (l layout) client() (kubernetes.Interface, error) {
	cfg, err := l.restConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// WaitNodesReady waits until every node is registered and Ready.
func (c *Cluster) WaitNodesReady(ctx context.Context, cs kubernetes.Interface) error {
	return poll.Until(ctx, 100*time.Millisecond, 0, func(ctx context.Context) error {
		var notReady []string
		for _, n := range c.l.nodes {
			node, err := cs.CoreV1().Nodes().Get(ctx, n.Name, metav1.GetOptions{})
			if err != nil {
				notReady = append(notReady, n.Name+" (not registered)")
			} else if !nodeReady(node) {
				notReady = append(notReady, n.Name)
			}
		}
		if len(notReady) > 0 {
			return fmt.Errorf("nodes not Ready: %s", strings.Join(notReady, ", "))
		}
		return nil
	})
}

// waitDefaultServiceAccount waits for the controller-manager to create the
// default namespace's ServiceAccount: until then every pod is rejected.
func waitDefaultServiceAccount(ctx context.Context, cs kubernetes.Interface) error {
	return poll.Until(ctx, 100*time.Millisecond, 0, func(ctx context.Context) error {
		if _, err := cs.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{}); err != nil {
			return fmt.Errorf("default service account not created (kube-controller-manager): %w", err)
		}
		return nil
	})
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
func (c *Cluster) ToolboxPod(name, node string) (*corev1.Pod, error) {
	image, err := c.ToolboxImage()
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

// WaitPodRunning waits until the pod is Running with an IP and returns it;
// it fails at once if the pod ends.
func WaitPodRunning(ctx context.Context, cs kubernetes.Interface, namespace, name string) (*corev1.Pod, error) {
	var pod *corev1.Pod
	err := poll.Until(ctx, 100*time.Millisecond, 0, func(ctx context.Context) error {
		p, err := cs.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			return errors.New("not found")
		case err != nil:
			return poll.Fatal(err)
		case p.Status.Phase == corev1.PodFailed || p.Status.Phase == corev1.PodSucceeded:
			return poll.Fatal(fmt.Errorf("ended: %s", p.Status.Phase))
		case p.Status.Phase != corev1.PodRunning || p.Status.PodIP == "":
			return fmt.Errorf("phase %s", p.Status.Phase)
		}
		pod = p
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s not Running: %w", namespace, name, err)
	}
	return pod, nil
}

// KubectlPath is the kubectl binary Kubectl runs: the patched build's, a
// client of either build.
func (c *Cluster) KubectlPath() string { return c.l.kubectl() }

// Kubectl runs kubectl against the cluster and returns its output.
func (c *Cluster) Kubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, c.l.kubectl(), append([]string{"--kubeconfig", c.Kubeconfig()}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// PodIPv4 returns the IPv4 address of eth0 as seen from inside the pod.
func (c *Cluster) PodIPv4(ctx context.Context, namespace, name string) (string, error) {
	out, err := c.Kubectl(ctx, "exec", "-n", namespace, name, "--", "ip", "-4", "-o", "addr", "show", "dev", "eth0")
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

// ProxyKubeconfig is the path of the kubeconfig of node's CRI proxy: its
// own identity, system:pod-networks:cri-proxy:<node>.
func (c *Cluster) ProxyKubeconfig(node string) string { return c.l.kubeconfig(node + "-cri-proxy") }
