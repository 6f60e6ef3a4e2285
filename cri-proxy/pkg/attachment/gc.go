package attachment

import (
	"context"
	"encoding/json"
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
		// The cached config has the ADD's cni-args merged in already.
		a := recordedAttachment{Network: c.Network, Interface: c.IfName, Config: c.Config}
		caps, err := capabilityRequest(c.CapabilityArgs)
		if err != nil {
			// A DEL with the args that could be read beats no DEL.
			logger.Error(err, "cached capability args partly unreadable; deleting with the rest",
				"network", c.Network, "sandbox", c.ContainerID, "interface", c.IfName)
		}
		a.IPs, a.MAC, a.PortMappings, a.Bandwidth = caps.IPs, caps.MAC, caps.PortMappings, caps.Bandwidth
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

// capabilityRequest reads back the capability args capabilityArgs made,
// as libcni cached them (decoded JSON), into the fields of a Request. Each
// key is read on its own: one that does not decode is left out and named
// in the error, the others are returned all the same.
func capabilityRequest(args map[string]interface{}) (Request, error) {
	var r Request
	fields := map[string]any{"ips": &r.IPs, "mac": &r.MAC, "portMappings": &r.PortMappings, "bandwidth": &r.Bandwidth}
	var errs []error
	for key, dst := range fields {
		v, ok := args[key]
		if !ok {
			continue
		}
		data, err := json.Marshal(v)
		if err == nil {
			err = json.Unmarshal(data, dst)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("capability arg %q: %w", key, err))
		}
	}
	return r, errors.Join(errs...)
}
