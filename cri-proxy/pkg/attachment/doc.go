// Package attachment is the life of a pod's extra network attachments on a
// node: it attaches the networks of the node's catalog into a sandbox's
// network namespace with CNI, detaches them again, and makes sure no
// sandbox runs containers without the networks its pod asked for, whatever
// was killed or cancelled on the way.
//
// Manager does, for one sandbox at a time:
//
//   - Intend records, before the runtime is asked for the sandbox, that the
//     pod's sandbox (known by pod UID and attempt until the runtime names
//     it) is to get networks. The runtime does not keep the request, so this
//     is how a later process recognises the sandbox.
//   - Attach records its intent (pod, netns, and the exact config list of
//     every network) in the state directory before the first ADD, then runs
//     the ADDs in parallel with bounded concurrency and a per-network timeout,
//     then sets the default routes the pod asked for. A request's keys reach
//     the plugins as capability args (ips, mac, portMappings, bandwidth, each
//     refused before any ADD unless a plugin declares it) and as args.cni
//     (cni-args, merged into the recorded config). If any step fails, every
//     network that was started is deleted again and the record removed: a
//     failed Attach leaves nothing behind.
//   - Admit (for CreateContainer) refuses a sandbox whose networks are not
//     all attached, and stops it so that kubelet makes a new one.
//   - Detach deletes every attachment of a sandbox with the config recorded
//     when it was added, so a changed or removed network file never leaks an
//     attachment. It is idempotent, gives up when its context ends, and keeps
//     what failed for Reconcile.
//   - Reconcile, given the runtime's sandboxes and the time they were
//     listed, detaches the attachments of sandboxes that no longer run,
//     stops running sandboxes that lack their networks, deletes cached
//     attachments that lost their record, and runs CNI GC for networks of
//     cniVersion 1.1.0 and later.
//
// Records and intents survive restarts: NewManager loads them from the
// state directory. The libcni cache directory must belong to the Manager
// alone, as Reconcile deletes cached attachments that have no record.
package attachment
