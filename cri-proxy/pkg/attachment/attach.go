package attachment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/containernetworking/cni/pkg/utils"
	"golang.org/x/sync/errgroup"

	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// Attach attaches the networks reqs names to the pod's sandbox, whose network
// namespace is netns, and returns the attachments in request order.
//
// Interface names must be assigned by the caller. Every network must be
// available in the source, else Attach fails before any ADD, naming the
// missing networks. The intent (pod, netns, and the exact config list of
// every network) is recorded in the state dir before the first ADD; the
// ADDs then run in parallel, at most Config.Concurrency at once, each
// within Config.Timeout.
//
// If any ADD fails or times out, no further ADD is started, the ones
// running are waited for, and every network whose ADD was started
// (including the failed ones, which may have done half their work) is
// deleted again; the record is then removed. The error names each failed
// network: `network "blue" (interface net2): add: <cause>`. A rollback DEL
// that fails keeps its attachment recorded for Reconcile to retry.
//
// Every capability a request needs (Request.Capabilities) must be declared
// by a plugin of its network's current config, else Attach fails before any
// ADD: `network "blue" cannot honour "ips": no plugin of its config declares
// the "ips" capability`. A request's CNIArgs are merged into the config
// that is recorded. Once every ADD succeeded, the default routes that
// requests ask for (DefaultRoute) are set in netns, replacing the other
// default routes of their family; if that fails, the error names the
// network and gateway, and the default routes are restored and every
// network rolled back as for a failed ADD.
//
// Calling Attach again for a sandbox that has attachments returns them
// unchanged, without running CNI, if the request (netns, and every key of
// every network, in order) is identical; any other request fails: Detach
// first. No requests attach nothing and record nothing.
func (m *Manager) Attach(ctx context.Context, pod PodRef, netns string, reqs []Request) (_ []Attachment, retErr error) {
	if len(reqs) == 0 {
		return nil, nil
	}
	if err := validateAttach(pod, netns, reqs); err != nil {
		return nil, err
	}
	unlock, err := m.lockSandbox(ctx, pod.SandboxID)
	if err != nil {
		return nil, err
	}
	defer unlock()

	if rec := m.record(pod.SandboxID); rec != nil {
		return sameAttachments(rec, netns, reqs)
	}
	rec, err := m.intent(pod, netns, reqs)
	if err != nil {
		return nil, err
	}
	if err := m.save(rec); err != nil {
		return nil, err
	}

	started := make([]bool, len(rec.Attachments))
	succeeded := false
	defer func() {
		if succeeded {
			return
		}
		// Undo even when ctx was cancelled: the work must not leak.
		if err := m.removeAttachments(context.WithoutCancel(ctx), rec, started, "rollback: del"); err != nil {
			retErr = errors.Join(retErr, err)
		}
	}()

	results, err := m.addAll(ctx, rec, started)
	if err != nil {
		return nil, err
	}
	if err := setDefaultRoutes(rec.NetNS, rec.defaultRoutes()); err != nil {
		return nil, err
	}
	done := rec.clone()
	done.State = stateAttached
	out := make([]Attachment, len(results))
	for i, res := range results {
		done.Attachments[i].Result = res
		out[i] = done.Attachments[i].attachment()
	}
	if err := m.save(done); err != nil {
		return nil, err
	}
	succeeded = true
	return out, nil
}

// validateAttach checks what can be checked before any lookup.
func validateAttach(pod PodRef, netns string, reqs []Request) error {
	if err := utils.ValidateContainerID(pod.SandboxID); err != nil {
		return fmt.Errorf("sandbox %q: %w", pod.SandboxID, err)
	}
	if netns == "" {
		return fmt.Errorf("sandbox %s: no network namespace", pod.SandboxID)
	}
	interfaces := map[string]bool{}
	gateways := map[bool]string{}
	var errs []error
	for _, r := range reqs {
		if r.Name == "" {
			errs = append(errs, errors.New("network with no name"))
			continue
		}
		if err := utils.ValidateInterfaceName(r.Interface); err != nil {
			errs = append(errs, fmt.Errorf("network %q: interface %q: %w", r.Name, r.Interface, err))
		} else if interfaces[r.Interface] {
			errs = append(errs, fmt.Errorf("network %q: interface %q: requested twice", r.Name, r.Interface))
		}
		interfaces[r.Interface] = true
		for _, ip := range r.IPs {
			if _, _, err := net.ParseCIDR(ip); err != nil {
				errs = append(errs, fmt.Errorf("network %q: ips: %w", r.Name, err))
			}
		}
		if r.MAC != "" {
			if _, err := net.ParseMAC(r.MAC); err != nil {
				errs = append(errs, fmt.Errorf("network %q: mac: %w", r.Name, err))
			}
		}
		errs = append(errs, validateKeys(r, gateways)...)
	}
	return errors.Join(errs...)
}

// validateKeys checks r's default-route, cni-args, portMappings and
// bandwidth. gateways maps each IP family (true: IPv4) to the network whose
// default route it has so far: one per family for the whole sandbox.
func validateKeys(r Request, gateways map[bool]string) []error {
	var errs []error
	for _, gw := range r.DefaultRoute {
		ip := net.ParseIP(gw)
		if ip == nil {
			errs = append(errs, fmt.Errorf("network %q: default-route %q: not an IP address without prefix length", r.Name, gw))
			continue
		}
		v4 := ip.To4() != nil
		if other, ok := gateways[v4]; ok {
			errs = append(errs, fmt.Errorf("network %q: default-route %q: network %q has the default route of that IP family already", r.Name, gw, other))
			continue
		}
		gateways[v4] = r.Name
	}
	if cniArgsSet(r.CNIArgs) {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(r.CNIArgs, &obj); err != nil || obj == nil {
			errs = append(errs, fmt.Errorf("network %q: cni-args: must be a JSON object", r.Name))
		}
	}
	for i, pm := range r.PortMappings {
		if !validPort(pm.HostPort) || !validPort(pm.ContainerPort) {
			errs = append(errs, fmt.Errorf("network %q: portMappings[%d]: ports must be 1 to 65535", r.Name, i))
		}
		if !slices.Contains([]string{"", "tcp", "udp", "sctp"}, strings.ToLower(pm.Protocol)) {
			errs = append(errs, fmt.Errorf("network %q: portMappings[%d]: protocol %q: not tcp, udp or sctp", r.Name, i, pm.Protocol))
		}
		if pm.HostIP != "" && net.ParseIP(pm.HostIP) == nil {
			errs = append(errs, fmt.Errorf("network %q: portMappings[%d]: hostIP %q: not an IP address", r.Name, i, pm.HostIP))
		}
	}
	if bw := r.Bandwidth; bw != nil && (bw.IngressRate < 0 || bw.IngressBurst < 0 || bw.EgressRate < 0 || bw.EgressBurst < 0) {
		errs = append(errs, fmt.Errorf("network %q: bandwidth: rates and bursts must not be negative", r.Name))
	}
	return errs
}

func validPort(p int32) bool { return p >= 1 && p <= 65535 }

// sameAttachments returns rec's attachments if it records this very request.
func sameAttachments(rec *record, netns string, reqs []Request) ([]Attachment, error) {
	same := rec.State == stateAttached && rec.NetNS == netns && len(rec.Attachments) == len(reqs)
	for i := 0; same && i < len(reqs); i++ {
		a, r := rec.Attachments[i], reqs[i]
		same = a.Network == r.Name && a.Interface == r.Interface && slices.Equal(a.IPs, r.IPs) && a.MAC == r.MAC &&
			slices.Equal(a.DefaultRoute, r.DefaultRoute) && sameCNIArgs(a.CNIArgs, r.CNIArgs) &&
			slices.Equal(a.PortMappings, r.PortMappings) && sameBandwidth(a.Bandwidth, r.Bandwidth)
	}
	if !same {
		return nil, fmt.Errorf("sandbox %s: already has attachments (%s) for another request; detach first", rec.Pod.SandboxID, rec.State)
	}
	out := make([]Attachment, len(rec.Attachments))
	for i, a := range rec.Attachments {
		out[i] = a.attachment()
	}
	return out, nil
}

func sameBandwidth(a, b *netrequest.Bandwidth) bool {
	return a == b || (a != nil && b != nil && *a == *b)
}

// intent returns the record of what is about to be added, with the configs
// the source has now: each network's, with the request's CNIArgs merged in.
// A network that is missing, unavailable, or cannot honour a capability
// the request needs fails it.
func (m *Manager) intent(pod PodRef, netns string, reqs []Request) (*record, error) {
	rec := &record{Version: recordVersion, Pod: pod, NetNS: netns, State: stateAttaching, created: m.now()}
	var errs []error
	for _, r := range reqs {
		n, ok := m.networks.Lookup(r.Name)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("network %q: not found on this node", r.Name))
			continue
		case !n.Available:
			errs = append(errs, fmt.Errorf("network %q: not available on this node: %v", r.Name, n.Err))
			continue
		}
		if err := n.CheckCapabilities(r.Capabilities()); err != nil {
			errs = append(errs, err)
			continue
		}
		config, err := withCNIArgs(n.Bytes, r.CNIArgs)
		if err != nil {
			errs = append(errs, fmt.Errorf("network %q: %w", r.Name, err))
			continue
		}
		a := recordedAttachment{
			Network:      r.Name,
			Interface:    r.Interface,
			IPs:          slices.Clone(r.IPs),
			MAC:          r.MAC,
			PortMappings: slices.Clone(r.PortMappings),
			DefaultRoute: slices.Clone(r.DefaultRoute),
			Config:       config,
		}
		if cniArgsSet(r.CNIArgs) {
			a.CNIArgs = slices.Clone(r.CNIArgs)
		}
		if r.Bandwidth != nil {
			bw := *r.Bandwidth
			a.Bandwidth = &bw
		}
		rec.Attachments = append(rec.Attachments, a)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return rec, nil
}

// addAll runs the ADDs of rec in parallel and returns their attachments.
// started[i] is set once the ADD of attachment i began: after a failure no
// further ADD begins.
func (m *Manager) addAll(ctx context.Context, rec *record, started []bool) ([]*Attachment, error) {
	results := make([]*Attachment, len(rec.Attachments))
	errs := make([]error, len(rec.Attachments))
	var failed atomic.Bool
	var g errgroup.Group
	g.SetLimit(m.cfg.Concurrency)
	for i, a := range rec.Attachments {
		g.Go(func() error {
			if failed.Load() {
				return nil
			}
			if err := ctx.Err(); err != nil {
				errs[i] = fmt.Errorf("network %q (interface %s): add: not started: %w", a.Network, a.Interface, err)
				failed.Store(true)
				return nil
			}
			started[i] = true
			res, err := m.add(ctx, rec.Pod, rec.NetNS, a)
			if err == nil {
				results[i], err = attachmentFromResult(a.Network, a.Interface, rec.NetNS, res)
			}
			if err != nil {
				errs[i] = fmt.Errorf("network %q (interface %s): add: %w", a.Network, a.Interface, err)
				failed.Store(true)
			}
			return nil
		})
	}
	_ = g.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return results, nil
}

// removeAttachments deletes the attachments of rec selected by which, in
// parallel, at most Config.Concurrency at once. If every DEL succeeded the
// record is removed; otherwise the record keeps only the attachments that
// failed, as detaching, and the error names each of them (what says which
// operation failed: "del", "rollback: del"). The caller holds the sandbox's
// lock.
func (m *Manager) removeAttachments(ctx context.Context, rec *record, which []bool, what string) error {
	errs := make([]error, len(rec.Attachments))
	var g errgroup.Group
	g.SetLimit(m.cfg.Concurrency)
	for i, a := range rec.Attachments {
		if !which[i] {
			continue
		}
		g.Go(func() error {
			if err := m.del(ctx, rec.Pod, rec.NetNS, a); err != nil {
				errs[i] = fmt.Errorf("network %q (interface %s): %s: %w", a.Network, a.Interface, what, err)
			}
			return nil
		})
	}
	_ = g.Wait()

	var failed []recordedAttachment
	for i, err := range errs {
		if err != nil {
			failed = append(failed, rec.Attachments[i])
		}
	}
	if len(failed) == 0 {
		return m.forget(rec.Pod.SandboxID)
	}
	left := rec.clone()
	left.State = stateDetaching
	left.Attachments = failed
	if err := m.save(left); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}
