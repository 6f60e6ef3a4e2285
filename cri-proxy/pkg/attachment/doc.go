// Package attach attaches a pod's extra networks into its sandbox's network
// namespace with CNI, and detaches them again.
//
// A node's networks are CNI network configuration lists in a directory of
// the proxy's own (never containerd's CNI conf dir): Store loads them file by
// file, reports and skips invalid ones, and keeps an in-memory view of which
// networks are available, refreshed in the background on file events and
// periodically.
//
// Manager runs CNI for one sandbox at a time:
//
//   - Attach records its intent (pod, netns, and the exact config list of
//     every network) in the state directory before the first ADD, then runs
//     the ADDs in parallel with bounded concurrency and a per-network timeout.
//     If any fails, every network that was started is deleted again and the
//     record removed: a failed Attach leaves nothing behind.
//   - Detach deletes every attachment of a sandbox with the config recorded
//     when it was added, so a changed or removed network file never leaks an
//     attachment. It is idempotent and keeps failed attachments for a retry.
//   - Reconcile detaches the attachments of sandboxes that no longer run,
//     including those a killed proxy left half-done, and runs CNI GC for
//     networks of cniVersion 1.1.0 and later.
//
// Records survive restarts: NewManager loads them from the state directory.
// The libcni cache directory must belong to the Manager alone, as Reconcile
// deletes cached attachments that have no record.
package attachment
