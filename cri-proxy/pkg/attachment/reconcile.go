package attachment

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/klog/v2"
)

// Sandbox is one of the runtime's sandboxes, as Reconcile needs it.
type Sandbox struct {
	// ID is the runtime's sandbox ID.
	ID string
	// Pod is the sandbox's pod: namespace, name, UID and attempt.
	Pod PodRef
	// Ready tells whether the sandbox runs (CRI SANDBOX_READY).
	Ready bool
	// WantsNetworks tells whether the sandbox's configuration, as the
	// runtime kept it (the annotation), asks for networks. A sandbox whose
	// pod and attempt an Intent names wants them too.
	WantsNetworks bool
}

// Snapshot is the runtime's sandboxes at one time.
type Snapshot struct {
	// Taken is when the list was asked for: what this process did after
	// that cannot be judged by it.
	Taken time.Time
	// Sandboxes are the sandboxes the runtime listed.
	Sandboxes []Sandbox
}

// Reconcile makes the node match snap, the runtime's sandboxes:
//
//   - a recorded sandbox that is not ready (or gone) is detached; one that
//     is ready but whose attachments did not all complete (an Attach that
//     failed to roll back, or was interrupted by a killed process) is
//     detached and stopped, so kubelet makes a new one. Records made after
//     snap.Taken are left for the next Reconcile: the list cannot tell of
//     them, however long their attach takes.
//   - a ready sandbox that wants networks (WantsNetworks, or an Intent names
//     its pod and attempt) but has none attached is stopped, unless its
//     RunPodSandbox is still running in this process. An Intent is settled
//     once its sandbox is attached or stopped, or when no sandbox of it
//     appeared within Config.IntentTTL.
//   - then, holding off every ADD and DEL: attachments in the libcni cache
//     without a record (a lost record) are deleted with their cached config
//     when their sandbox is not ready, and every network of cniVersion 1.1.0
//     or later is garbage-collected (CNI GC) with the attachments still
//     recorded or cached for ready sandboxes as cni.dev/valid-attachments.
//     Only available networks are collected.
//
// Errors are collected, not fatal: the error names each sandbox or network
// that could not be cleaned, and the next Reconcile retries.
func (m *Manager) Reconcile(ctx context.Context, snap Snapshot) error {
	live := map[string]bool{}
	keyOf := map[string]sandboxKey{}
	for _, sb := range snap.Sandboxes {
		keyOf[sb.ID] = sb.Pod.key()
		if sb.Ready {
			live[sb.ID] = true
		}
	}
	var errs []error
	judged := map[string]bool{}
	// Intents whose sandbox could not be cleaned are kept for a retry.
	unsettled := map[sandboxKey]bool{}
	for _, id := range m.Sandboxes() {
		judged[id] = true
		if err := m.reconcileRecord(ctx, id, live[id], snap.Taken); err != nil {
			errs = append(errs, fmt.Errorf("sandbox %s: %w", id, err))
			if k, ok := keyOf[id]; ok {
				unsettled[k] = true
			}
		}
		if ctx.Err() != nil {
			return errors.Join(append(errs, ctx.Err())...)
		}
	}
	for _, sb := range snap.Sandboxes {
		if !sb.Ready || judged[sb.ID] || !m.wantsNetworks(sb) || m.attachedOrInFlight(sb) {
			continue
		}
		sb.Pod.SandboxID = sb.ID
		klog.FromContext(ctx).Info("stopping a sandbox that runs without the networks its pod asked for, so kubelet makes a new one",
			"pod", sb.Pod.String(), "sandbox", sb.ID)
		if err := m.stopUnattached(ctx, sb.Pod); err != nil {
			unsettled[sb.Pod.key()] = true
			errs = append(errs, fmt.Errorf("sandbox %s of pod %s: %w", sb.ID, sb.Pod, err))
		}
	}
	if err := m.settleIntents(snap, unsettled); err != nil {
		errs = append(errs, err)
	}
	if err := m.gc(ctx, live); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// reconcileRecord judges a sandbox's record under its lock: an Attach may
// just have finished.
func (m *Manager) reconcileRecord(ctx context.Context, id string, ready bool, taken time.Time) error {
	unlock, err := m.lockSandbox(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	rec := m.record(id)
	switch {
	case rec == nil || (!rec.created.IsZero() && rec.created.After(taken)):
		return nil
	case ready && rec.State == stateAttached:
		return nil
	case ready:
		klog.FromContext(ctx).Info("stopping a sandbox whose networks were not all attached, so kubelet makes a new one",
			"sandbox", id, "pod", rec.Pod.String(), "state", rec.State)
		errs := []error{m.detachLocked(ctx, rec)}
		if err := m.runtime.StopSandbox(ctx, id); err != nil {
			errs = append(errs, fmt.Errorf("stop sandbox: %w", err))
		}
		return errors.Join(errs...)
	}
	klog.FromContext(ctx).V(2).Info("detaching networks of a gone sandbox", "sandbox", id,
		"pod", rec.Pod.String(), "state", rec.State)
	return m.detachLocked(ctx, rec)
}

// wantsNetworks tells whether sb's pod asked for networks.
func (m *Manager) wantsNetworks(sb Sandbox) bool {
	if sb.WantsNetworks {
		return true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.intents[sb.Pod.key()] != nil
}

// attachedOrInFlight tells whether sb has every network, or its
// RunPodSandbox or Attach is still running here.
func (m *Manager) attachedOrInFlight(sb Sandbox) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	if rec := m.records[sb.ID]; rec != nil {
		return rec.State != stateDetaching
	}
	in := m.intents[sb.Pod.key()]
	return in != nil && in.inFlight
}

// settleIntents settles the idle intents made before snap was taken whose
// sandbox is attached or was stopped, or that are older than IntentTTL
// with no sandbox.
func (m *Manager) settleIntents(snap Snapshot, unsettled map[sandboxKey]bool) error {
	seen := map[sandboxKey]bool{}
	for _, sb := range snap.Sandboxes {
		seen[sb.Pod.key()] = true
	}
	m.mu.Lock()
	var done []*Intent
	for k, in := range m.intents {
		switch {
		case in.inFlight || in.Created.After(snap.Taken) || unsettled[k]:
		case seen[k] || snap.Taken.Sub(in.Created) > m.cfg.IntentTTL:
			done = append(done, in)
		}
	}
	m.mu.Unlock()
	var errs []error
	for _, in := range done {
		if err := in.Settle(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
