package attachment

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"k8s.io/klog/v2"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/catalog"
)

// gc deletes cached attachments that lost their record and runs CNI GC,
// with no ADD or DEL running.
func (m *Manager) gc(ctx context.Context, live map[string]bool) error {
	m.gcMu.Lock()
	defer m.gcMu.Unlock()
	logger := klog.FromContext(ctx)

	valid := map[string][]types.GCAttachment{}
	type key struct{ network, sandbox, ifname string }
	recorded := map[key]bool{}
	m.mu.Lock()
	for _, rec := range m.records {
		for _, a := range rec.Attachments {
			recorded[key{a.Network, rec.Pod.SandboxID, a.Interface}] = true
			valid[a.Network] = append(valid[a.Network], types.GCAttachment{ContainerID: rec.Pod.SandboxID, IfName: a.Interface})
		}
	}
	m.mu.Unlock()

	var errs []error
	cached, err := m.cni.GetCachedAttachments("")
	if err != nil {
		errs = append(errs, fmt.Errorf("cni cache: %w", err))
	}
	for _, c := range cached {
		if recorded[key{c.Network, c.ContainerID, c.IfName}] {
			continue
		}
		if live[c.ContainerID] {
			// Its record was lost, but the sandbox runs: keep it until the
			// sandbox is gone.
			logger.Info("attachment without a record in a live sandbox; kept until the sandbox is gone",
				"network", c.Network, "sandbox", c.ContainerID, "interface", c.IfName)
			valid[c.Network] = append(valid[c.Network], types.GCAttachment{ContainerID: c.ContainerID, IfName: c.IfName})
			continue
		}
		logger.Info("deleting attachment without a record", "network", c.Network, "sandbox", c.ContainerID, "interface", c.IfName)
		pod := podFromArgs(c.ContainerID, c.CniArgs)
		a := recordedAttachment{Network: c.Network, Interface: c.IfName, Config: c.Config}
		a.IPs, a.MAC = capabilityRequest(c.CapabilityArgs)
		if err := m.delLocked(ctx, pod, c.NetNS, a); err != nil {
			errs = append(errs, fmt.Errorf("network %q (sandbox %s, interface %s): del unrecorded: %w", c.Network, c.ContainerID, c.IfName, err))
		}
	}

	for _, n := range m.networks.Networks() {
		if !n.Available || !catalog.SupportsStatusAndGC(n.CNIVersion) {
			continue // GC would fail like STATUS did; the next Reconcile retries
		}
		list, err := catalog.ParseConfig(n.Bytes)
		if err != nil {
			errs = append(errs, fmt.Errorf("network %q: gc: %w", n.Name, err))
			continue
		}
		if err := m.gcNetwork(ctx, list, valid[n.Name]); err != nil {
			errs = append(errs, fmt.Errorf("network %q: gc: %w", n.Name, err))
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) gcNetwork(ctx context.Context, list *libcni.NetworkConfigList, valid []types.GCAttachment) error {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	if valid == nil {
		valid = []types.GCAttachment{} // an empty list, not an absent one
	}
	return m.timedOut(ctx, m.cni.GCNetworkList(ctx, list, &libcni.GCArgs{ValidAttachments: valid}))
}

// podFromArgs rebuilds a pod reference from cached CNI_ARGS.
func podFromArgs(sandboxID string, args [][2]string) PodRef {
	pod := PodRef{SandboxID: sandboxID}
	for _, kv := range args {
		switch kv[0] {
		case "K8S_POD_NAMESPACE":
			pod.Namespace = kv[1]
		case "K8S_POD_NAME":
			pod.Name = kv[1]
		case "K8S_POD_UID":
			pod.UID = kv[1]
		}
	}
	return pod
}

// capabilityRequest reads back the ips and mac capability args.
func capabilityRequest(args map[string]interface{}) (ips []string, mac string) {
	if list, ok := args["ips"].([]interface{}); ok {
		for _, v := range list {
			if s, ok := v.(string); ok {
				ips = append(ips, s)
			}
		}
	}
	mac, _ = args["mac"].(string)
	return ips, mac
}
