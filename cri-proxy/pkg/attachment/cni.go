package attachment

import (
	"context"
	"errors"
	"fmt"

	"github.com/containernetworking/cni/libcni"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/plugins/pkg/ns"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/catalog"
)

// runtimeConf returns the libcni runtime config of one attachment: the
// same on ADD and DEL.
func runtimeConf(pod PodRef, netns string, req Request) *libcni.RuntimeConf {
	return &libcni.RuntimeConf{
		ContainerID:    pod.SandboxID,
		NetNS:          netns,
		IfName:         req.Interface,
		Args:           pod.cniArgs(),
		CapabilityArgs: req.capabilityArgs(),
	}
}

// add runs one network's ADD under the GC read lock, within Timeout.
func (m *Manager) add(ctx context.Context, pod PodRef, netns string, a recordedAttachment) (types.Result, error) {
	list, err := catalog.ParseConfig(a.Config)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	m.gcMu.RLock()
	defer m.gcMu.RUnlock()
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	start := m.now()
	res, err := m.cni.AddNetworkList(ctx, list, runtimeConf(pod, netns, a.request()))
	err = m.timedOut(ctx, err)
	m.obs.AttachDone(a.Network, m.now().Sub(start), err)
	return res, err
}

// del runs one network's DEL under the GC read lock, within Timeout, with
// the recorded config. A netns that is gone is not passed: plugins then
// release what they hold outside it (addresses) and skip the rest.
func (m *Manager) del(ctx context.Context, pod PodRef, netns string, a recordedAttachment) error {
	m.gcMu.RLock()
	defer m.gcMu.RUnlock()
	return m.delLocked(ctx, pod, netns, a)
}

// delLocked is del for a caller that holds gcMu.
func (m *Manager) delLocked(ctx context.Context, pod PodRef, netns string, a recordedAttachment) error {
	list, err := catalog.ParseConfig(a.Config)
	if err != nil {
		return fmt.Errorf("recorded config: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, m.cfg.Timeout)
	defer cancel()
	start := m.now()
	err = m.cni.DelNetworkList(ctx, list, runtimeConf(pod, usableNetNS(netns), a.request()))
	err = m.timedOut(ctx, err)
	m.obs.DetachDone(a.Network, m.now().Sub(start), err)
	return err
}

// timedOut says so when err is due to the per-network deadline.
func (m *Manager) timedOut(ctx context.Context, err error) error {
	if err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("timed out after %s: %w", m.cfg.Timeout, err)
	}
	return err
}

// usableNetNS returns path if it is a network namespace, else "" (it was
// removed, or unmounted leaving the file).
func usableNetNS(path string) string {
	if path == "" {
		return ""
	}
	switch ns.IsNSorErr(path).(type) {
	case ns.NSPathNotExistErr, ns.NSPathNotNSErr:
		return ""
	}
	return path
}
