// Package catalog is a node's network catalog: the CNI network config lists
// of a directory of the proxy's own (never the runtime's CNI conf dir),
// loaded file by file with invalid ones reported and skipped, and which of
// them are available (plugins present, CNI STATUS succeeding), refreshed in
// the background on file events and periodically. Reads are in-memory: the
// CRI path never waits on disk or a plugin.
//
// A network that shares a name or a host-local lease dir with a network of
// the runtime's CNI conf dir (the pods' primary network) is refused: CNI
// GC of one would release the other's addresses.
package catalog
