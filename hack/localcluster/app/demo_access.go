package app

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"sigs.k8s.io/pod-networks/admission"
	"sigs.k8s.io/pod-networks/internal/localcluster"
	"sigs.k8s.io/pod-networks/internal/poll"
	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// The access section's names: the Network object restricts red to
// accessAllowed; the pod is tried in accessOther first.
const (
	accessNetwork = "red"
	accessAllowed = "team-a"
	accessOther   = "team-b"
	accessPod     = "demo-access"
)

// demoAccess shows the network access policy (package admission, installed
// with the cluster): a Network object opens red to one namespace only; the
// same pod asking for red is refused by the apiserver in another namespace,
// with the message naming network and namespace, and admitted and Running
// with its interface in that one.
func demoAccess(ctx context.Context, c *localcluster.Cluster, cs kubernetes.Interface, res *DemoNetworks) error {
	res.Access = DemoAccess{Network: accessNetwork, Namespaces: []string{accessAllowed}, Pod: accessPod, Request: accessNetwork}
	a := &res.Access
	for _, ns := range []string{accessAllowed, accessOther} {
		if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("namespace %s: %w", ns, err)
		}
		// Until the controller-manager makes it, every pod is refused.
		err := poll.Until(ctx, pollInterval, 30*time.Second, func(ctx context.Context) error {
			_, err := cs.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
			return err
		})
		if err != nil {
			return fmt.Errorf("namespace %s: no default service account: %w", ns, err)
		}
	}
	cfg, err := c.RESTConfig()
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	network := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.x-k8s.io/v1alpha1", "kind": "Network",
		"metadata": map[string]any{"name": accessNetwork},
		"spec":     map[string]any{"namespaces": []any{accessAllowed}},
	}}
	if _, err := dyn.Resource(admission.NetworkResource).Create(ctx, network, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("Network %s: %w", accessNetwork, err)
	}

	// The policy sees a new Network through an informer: try until it
	// refuses, and fail if it admits.
	a.Refused.Namespace = accessOther
	err = poll.Until(ctx, pollInterval, 30*time.Second, func(ctx context.Context) error {
		_, err := accessTry(ctx, c, cs, accessOther, metav1.DryRunAll)
		switch {
		case err == nil:
			return fmt.Errorf("admitted in %s on a dry run", accessOther)
		case !strings.Contains(err.Error(), "pod-networks-access"):
			return fmt.Errorf("refused, but not by the policy: %w", err)
		}
		a.Refused.Message = err.Error()
		return nil
	})
	if err != nil {
		return fmt.Errorf("%s in %s: not refused: %w", accessPod, accessOther, err)
	}

	a.Admitted.Namespace = accessAllowed
	start := time.Now()
	if _, err := accessTry(ctx, c, cs, accessAllowed, ""); err != nil {
		return fmt.Errorf("%s in %s: %w", accessPod, accessAllowed, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	pod, err := localcluster.WaitPodRunning(wctx, cs, accessAllowed, accessPod)
	cancel()
	if err != nil {
		return fmt.Errorf("%s in %s: %w", accessPod, accessAllowed, err)
	}
	a.Admitted.Node, a.Admitted.RunningSeconds = pod.Spec.NodeName, time.Since(start).Seconds()
	inside, err := c.Kubectl(ctx, "exec", "-n", accessAllowed, accessPod, "--", "ip", "-4", "-o", "addr")
	if err != nil {
		return fmt.Errorf("%s: %w", accessPod, err)
	}
	a.Admitted.Inside = podInterfaces(inside)
	return nil
}

// accessTry creates the access pod in ns (dryRun: metav1.DryRunAll or "").
func accessTry(ctx context.Context, c *localcluster.Cluster, cs kubernetes.Interface, ns, dryRun string) (*corev1.Pod, error) {
	pod, err := c.ToolboxPod(accessPod, "")
	if err != nil {
		return nil, err
	}
	pod.Namespace, pod.Spec.NodeSelector = ns, nil
	pod.Annotations = map[string]string{netrequest.AnnotationKey: accessNetwork}
	opts := metav1.CreateOptions{}
	if dryRun != "" {
		opts.DryRun = []string{dryRun}
	}
	return cs.CoreV1().Pods(ns).Create(ctx, pod, opts)
}
