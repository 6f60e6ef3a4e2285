package attachment

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync/atomic"

	"github.com/containernetworking/cni/pkg/utils"
	"golang.org/x/sync/errgroup"
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
// Calling Attach again for a sandbox that has attachments returns them
// unchanged, without running CNI, if the request (netns, networks,
// interfaces, IPs, MACs, in order) is identical; any other request fails:
// Detach first. No requests attach nothing and record nothing.
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
	}
	return errors.Join(errs...)
}

// sameAttachments returns rec's attachments if it records this very request.
func sameAttachments(rec *record, netns string, reqs []Request) ([]Attachment, error) {
	same := rec.State == stateAttached && rec.NetNS == netns && len(rec.Attachments) == len(reqs)
	for i := 0; same && i < len(reqs); i++ {
		a, r := rec.Attachments[i], reqs[i]
		same = a.Network == r.Name && a.Interface == r.Interface && slices.Equal(a.IPs, r.IPs) && a.MAC == r.MAC
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

// intent returns the record of what is about to be added, with the configs
// the source has now.
func (m *Manager) intent(pod PodRef, netns string, reqs []Request) (*record, error) {
	rec := &record{Version: recordVersion, Pod: pod, NetNS: netns, State: stateAttaching, created: m.now()}
	var errs []error
	for _, r := range reqs {
		n, ok := m.networks.Lookup(r.Name)
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("network %q: not found on this node", r.Name))
		case !n.Available:
			errs = append(errs, fmt.Errorf("network %q: not available on this node: %v", r.Name, n.Err))
		default:
			rec.Attachments = append(rec.Attachments, recordedAttachment{
				Network:   r.Name,
				Interface: r.Interface,
				IPs:       slices.Clone(r.IPs),
				MAC:       r.MAC,
				Config:    n.Bytes,
			})
		}
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
