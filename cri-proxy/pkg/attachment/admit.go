package attachment

import (
	"context"
	"errors"
	"fmt"

	"k8s.io/klog/v2"
)

// ErrNotAttached is what Admit's refusals wrap: the sandbox lacks networks
// its pod asked for, so no container may start in it.
var ErrNotAttached = errors.New("networks not attached")

// Admit tells whether containers may be created in pod's sandbox
// (pod.SandboxID), whose pod asks for networks (the caller knows it from
// the CreateContainer request's sandbox config): only if this Manager
// attached every network to that sandbox.
//
// Otherwise it returns an error wrapping ErrNotAttached and, unless the
// sandbox's RunPodSandbox is still running in this process (which rolls back
// on its own if it fails), it detaches whatever is recorded and stops the
// sandbox, so that kubelet makes the pod a new one. This is what keeps a pod
// from running without its networks when the proxy was killed, or its
// caller gave up, between the runtime making the sandbox and the proxy
// attaching the networks: kubelet would otherwise start the containers in
// the READY sandbox it finds.
func (m *Manager) Admit(ctx context.Context, pod PodRef) error {
	id := pod.SandboxID
	m.mu.Lock()
	rec := m.records[id]
	in := m.intents[pod.key()]
	inFlight := (rec != nil && rec.State == stateAttaching) || (rec == nil && in != nil && in.inFlight)
	m.mu.Unlock()
	switch {
	case rec != nil && rec.State == stateAttached:
		return nil
	case inFlight:
		return fmt.Errorf("pod %s: sandbox %s: still being attached: %w", pod, id, ErrNotAttached)
	}
	err := m.stopUnattached(ctx, pod)
	klog.FromContext(ctx).Info("refused a container in a sandbox without its networks; stopped the sandbox so kubelet makes a new one",
		"pod", pod.String(), "sandbox", id, "err", err)
	if err != nil {
		return fmt.Errorf("pod %s: sandbox %s: %w; stopping it failed: %v", pod, id, ErrNotAttached, err)
	}
	return fmt.Errorf("pod %s: sandbox %s: %w (the proxy restarted, or RunPodSandbox was cancelled, before they were); the sandbox is stopped so that kubelet makes a new one", pod, id, ErrNotAttached)
}

// stopUnattached detaches what is recorded of a sandbox that must not run
// without its networks, stops it, and settles the intent of its pod and
// attempt. A sandbox whose attachments completed meanwhile is left alone.
func (m *Manager) stopUnattached(ctx context.Context, pod PodRef) error {
	id := pod.SandboxID
	unlock, err := m.lockSandbox(ctx, id)
	if err != nil {
		return err
	}
	defer unlock()
	var errs []error
	if rec := m.record(id); rec != nil {
		if rec.State == stateAttached {
			return nil
		}
		if err := m.detachLocked(ctx, rec); err != nil {
			errs = append(errs, err)
		}
	}
	if err := m.runtime.StopSandbox(ctx, id); err != nil {
		errs = append(errs, fmt.Errorf("stop sandbox: %w", err))
	} else if err := m.settleIdle(pod.key()); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// settleIdle settles the intent of k unless its call is in flight.
func (m *Manager) settleIdle(k sandboxKey) error {
	m.mu.Lock()
	in := m.intents[k]
	idle := in != nil && !in.inFlight
	m.mu.Unlock()
	if !idle {
		return nil
	}
	return in.Settle()
}
