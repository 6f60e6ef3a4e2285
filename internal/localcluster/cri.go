package localcluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"sigs.k8s.io/pod-networks/pkg/criinfo"
)

// runtimeClient dials a CRI endpoint (unix://...).
func runtimeClient(endpoint string) (runtimeapi.RuntimeServiceClient, func(), error) {
	conn, err := grpc.NewClient(endpoint, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return nil, nil, fmt.Errorf("dial CRI %s: %w", endpoint, err)
	}
	return runtimeapi.NewRuntimeServiceClient(conn), func() { conn.Close() }, nil
}

// removeSandboxes stops and removes every pod sandbox on the node through
// a CRI endpoint, so the runtime (and a proxy in front of it) runs CNI DEL
// and releases addresses, links and network namespaces before its
// processes are stopped.
func removeSandboxes(ctx context.Context, n Node, endpoint string) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	rt, closeConn, err := runtimeClient(endpoint)
	if err != nil {
		return fmt.Errorf("%s: %w", n.Name, err)
	}
	defer closeConn()
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		return fmt.Errorf("%s: list sandboxes: %w", n.Name, err)
	}
	var errs []error
	for _, sb := range list.GetItems() {
		if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("%s: stop sandbox %s: %w", n.Name, sb.Id, err))
			continue
		}
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			errs = append(errs, fmt.Errorf("%s: remove sandbox %s: %w", n.Name, sb.Id, err))
		}
	}
	return errors.Join(errs...)
}

// SandboxNetNS returns the network namespace path of the pod sandbox the
// runtime on node runs for the pod namespace/name.
func (c *Cluster) SandboxNetNS(ctx context.Context, n Node, namespace, name string) (string, error) {
	rt, closeConn, err := runtimeClient("unix://" + n.ContainerdSocket())
	if err != nil {
		return "", err
	}
	defer closeConn()
	list, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{Filter: &runtimeapi.PodSandboxFilter{
		State:         &runtimeapi.PodSandboxStateValue{State: runtimeapi.PodSandboxState_SANDBOX_READY},
		LabelSelector: map[string]string{"io.kubernetes.pod.namespace": namespace, "io.kubernetes.pod.name": name},
	}})
	if err != nil {
		return "", err
	}
	if len(list.Items) != 1 {
		return "", fmt.Errorf("%s: %d ready sandboxes for pod %s/%s", n.Name, len(list.Items), namespace, name)
	}
	st, err := rt.PodSandboxStatus(ctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: list.Items[0].Id, Verbose: true})
	if err != nil {
		return "", err
	}
	return criinfo.NetNSPath(st.GetInfo()["info"])
}

// criReady checks that the CRI runtime at endpoint reports RuntimeReady and
// NetworkReady.
func criReady(ctx context.Context, endpoint string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rt, closeConn, err := runtimeClient(endpoint)
	if err != nil {
		return err
	}
	defer closeConn()
	st, err := rt.Status(ctx, &runtimeapi.StatusRequest{})
	if err != nil {
		return err
	}
	for _, want := range []string{runtimeapi.RuntimeReady, runtimeapi.NetworkReady} {
		ok := false
		for _, cond := range st.GetStatus().GetConditions() {
			if cond.GetType() == want {
				ok = cond.GetStatus()
				if !ok {
					return fmt.Errorf("%s false: %s: %s", want, cond.GetReason(), cond.GetMessage())
				}
			}
		}
		if !ok {
			return fmt.Errorf("no %s condition", want)
		}
	}
	return nil
}

// ContainerSandbox returns the ID of the pod sandbox a container runs in,
// asking the node's containerd. containerID may carry kubelet's
// "containerd://" prefix.
func (c *Cluster) ContainerSandbox(ctx context.Context, node, containerID string) (string, error) {
	n, err := c.l.node(node)
	if err != nil {
		return "", err
	}
	_, id, found := strings.Cut(containerID, "://")
	if !found {
		id = containerID
	}
	rt, closeConn, err := runtimeClient("unix://" + n.ContainerdSocket())
	if err != nil {
		return "", err
	}
	defer closeConn()
	list, err := rt.ListContainers(ctx, &runtimeapi.ListContainersRequest{
		Filter: &runtimeapi.ContainerFilter{Id: id}})
	if err != nil {
		return "", err
	}
	if len(list.GetContainers()) != 1 {
		return "", fmt.Errorf("%s: %d containers with ID %s", n.Name, len(list.GetContainers()), id)
	}
	return list.GetContainers()[0].GetPodSandboxId(), nil
}
