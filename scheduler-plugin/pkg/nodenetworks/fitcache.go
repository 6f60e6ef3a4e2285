package nodenetworks

import (
	"sync"

	"k8s.io/apimachinery/pkg/util/sets"
)

// fitCache remembers, per kind of request and set of required networks, the
// nodes that have them, so that PreFilter does not scan every node for
// every pod. Pods of a workload ask for the same networks, and nodes change
// their networks rarely: any change of a node's networks in any source
// (status.networks or the annotation: which one a pod reads depends on the
// pod and the node), or a node added or deleted, empties the cache.
//
// The cache follows the scheduler's node informer, which may lag the
// scheduler's snapshot by a moment. PreFilter therefore uses an entry only
// when the snapshot has as many nodes as the cache knows, and rescans before
// it rejects a pod; the queueing hints record the node they are given before
// deciding, so a pod requeued by a node gaining a network sees that node.
type fitCache struct {
	mu      sync.Mutex
	values  map[string]nodeValues       // node name → its networks in every source
	entries map[string]sets.Set[string] // fitKey (kind of request, required networks) → nodes with them
}

// maxFitEntries bounds the cache; past it, it starts over.
const maxFitEntries = 1024

func newFitCache() *fitCache {
	return &fitCache{values: map[string]nodeValues{}, entries: map[string]sets.Set[string]{}}
}

// setNode records a node's networks; a change in any source empties the
// cache.
func (c *fitCache) setNode(name string, value nodeValues) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.values[name]; ok && old.equal(value) {
		return
	}
	c.values[name] = value
	clear(c.entries)
}

// deleteNode forgets a node.
func (c *fitCache) deleteNode(name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.values[name]; !ok {
		return
	}
	delete(c.values, name)
	clear(c.entries)
}

// get returns the cached nodes for key, if the cache knows exactly
// snapshotNodes nodes. The set is shared: callers must not modify it.
func (c *fitCache) get(key string, snapshotNodes int) (sets.Set[string], bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.values) != snapshotNodes {
		return nil, false
	}
	s, ok := c.entries[key]
	return s, ok
}

// put stores the nodes for key, computed over snapshotNodes nodes, unless
// the cache knows another number of nodes by now.
func (c *fitCache) put(key string, fit sets.Set[string], snapshotNodes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.values) != snapshotNodes {
		return
	}
	if len(c.entries) >= maxFitEntries {
		clear(c.entries)
	}
	c.entries[key] = fit
}
