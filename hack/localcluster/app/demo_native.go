package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"sigs.k8s.io/pod-networks/internal/localcluster"
	"sigs.k8s.io/pod-networks/internal/poll"
)

// demoNative shows the native API (patched Kubernetes, gate on): a pod that
// asks through spec.networks, one entry naming its interface, placed by the
// scheduler on the node whose status.networks lists both networks, with its
// interfaces inside; and, when a node's runtime cannot attach networks (no
// CRI proxy), a pod bound to it by nodeName, which its kubelet refuses
// with the reason.
func demoNative(ctx context.Context, c *localcluster.Cluster, cs kubernetes.Interface, res *DemoNetworks) error {
	n := &DemoNativePods{Pod: "demo-native", Request: []DemoNetworkRequest{{Name: "blue"}, {Name: "red", InterfaceName: "data0"}}}
	res.Native = n
	start := time.Now()
	if err := createNative(ctx, c, n.Pod, "", n.Request); err != nil {
		return fmt.Errorf("%s: %w", n.Pod, err)
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	pod, err := localcluster.WaitPodRunning(wctx, cs, "default", n.Pod)
	cancel()
	if err != nil {
		return fmt.Errorf("%s: %w", n.Pod, err)
	}
	n.RunningSeconds, n.Node = time.Since(start).Seconds(), pod.Spec.NodeName
	inside, err := c.Kubectl(ctx, "exec", n.Pod, "--", "ip", "-4", "-o", "addr")
	if err != nil {
		return fmt.Errorf("%s: %w", n.Pod, err)
	}
	if n.Inside = podInterfaces(inside); len(n.Inside) == 0 {
		return fmt.Errorf("%s: no address but lo inside the pod: %q", n.Pod, inside)
	}

	for _, node := range c.NodeList() {
		if node.CRIProxy {
			continue
		}
		r := &DemoRefusedPod{Pod: "demo-refused", Node: node.Name, Request: []DemoNetworkRequest{{Name: "blue"}}}
		n.Refused = r
		if err := createNative(ctx, c, r.Pod, node.Name, r.Request); err != nil {
			return fmt.Errorf("%s: %w", r.Pod, err)
		}
		err := poll.Until(ctx, pollInterval, 60*time.Second, func(ctx context.Context) error {
			p, err := cs.CoreV1().Pods("default").Get(ctx, r.Pod, metav1.GetOptions{})
			if err != nil {
				return err
			}
			switch p.Status.Phase {
			case corev1.PodFailed:
				r.Phase, r.Reason, r.Message = string(p.Status.Phase), p.Status.Reason, p.Status.Message
				return nil
			case corev1.PodRunning:
				return poll.Fatal(fmt.Errorf("running on %s, whose runtime cannot attach networks", node.Name))
			}
			return errors.New("not refused yet")
		})
		if err != nil {
			return fmt.Errorf("%s: %w", r.Pod, err)
		}
		break
	}
	return nil
}

// createNative creates a toolbox pod with spec.networks, bound to node
// unless it is empty. The pod is built as unstructured data: this module's
// k8s.io/api is the stock one, which has no spec.networks.
func createNative(ctx context.Context, c *localcluster.Cluster, name, node string, request []DemoNetworkRequest) error {
	pod, err := c.ToolboxPod(name, "")
	if err != nil {
		return err
	}
	pod.Spec.NodeSelector, pod.Spec.NodeName = nil, node
	obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(pod)
	if err != nil {
		return err
	}
	networks := make([]any, 0, len(request))
	for _, r := range request {
		m := map[string]any{"name": r.Name}
		if r.InterfaceName != "" {
			m["interfaceName"] = r.InterfaceName
		}
		networks = append(networks, m)
	}
	u := &unstructured.Unstructured{Object: obj}
	u.SetAPIVersion("v1")
	u.SetKind("Pod")
	if err := unstructured.SetNestedSlice(u.Object, networks, "spec", "networks"); err != nil {
		return err
	}
	cfg, err := c.RESTConfig()
	if err != nil {
		return err
	}
	dc, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	created, err := dc.Resource(schema.GroupVersionResource{Version: "v1", Resource: "pods"}).Namespace(pod.Namespace).Create(ctx, u, metav1.CreateOptions{})
	if err != nil {
		return err
	}
	// A gate-off apiserver drops the field without a word: say so.
	if got, _, _ := unstructured.NestedSlice(created.Object, "spec", "networks"); len(got) != len(networks) {
		return fmt.Errorf("the apiserver dropped spec.networks (is the PodNetworks gate on?)")
	}
	return nil
}
