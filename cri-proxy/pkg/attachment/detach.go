package attachment

import "context"

// Detach deletes every attachment of the sandbox, in parallel, at most
// Config.Concurrency at once, each within Config.Timeout, with the config
// recorded when it was added: a network file changed or removed since does
// not matter. The recorded netns is passed if it still is a network
// namespace, else none (plugins then release what lives outside it).
//
// The record is removed only when every DEL succeeded; failed attachments
// stay recorded for a retry (by the next Detach or by Reconcile) and the
// error names each of them: `network "blue" (interface net1): del: <cause>`.
// A sandbox without attachments is not an error, so Detach is idempotent.
// A Detach waits for an Attach of the same sandbox to finish, unless ctx
// ends first; then it fails and the attachments stay recorded for
// Reconcile. A failed Detach asks for a Reconcile soon.
func (m *Manager) Detach(ctx context.Context, sandboxID string) (retErr error) {
	defer func() {
		if retErr != nil {
			m.kickReconcile()
		}
	}()
	unlock, err := m.lockSandbox(ctx, sandboxID)
	if err != nil {
		return err
	}
	defer unlock()
	rec := m.record(sandboxID)
	if rec == nil {
		return nil
	}
	return m.detachLocked(ctx, rec)
}

// detachLocked is Detach for a caller that holds the sandbox's lock.
func (m *Manager) detachLocked(ctx context.Context, rec *record) error {
	all := make([]bool, len(rec.Attachments))
	for i := range all {
		all[i] = true
	}
	return m.removeAttachments(ctx, rec, all, "del")
}
