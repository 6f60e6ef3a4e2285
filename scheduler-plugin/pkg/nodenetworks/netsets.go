package nodenetworks

import (
	"maps"
	"sync"
	"sync/atomic"

	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

// maxCachedValues bounds the cache of parsed node values. Past it the cache
// starts over; values still in use are parsed again once.
const maxCachedValues = 4096

// bitset is a set of interned network names.
type bitset []uint64

// has reports whether s holds every bit of want.
func (s bitset) has(want bitset) bool {
	for i, w := range want {
		var have uint64
		if i < len(s) {
			have = s[i]
		}
		if have&w != w {
			return false
		}
	}
	return true
}

func (s bitset) with(bit int) bitset {
	for len(s) <= bit/64 {
		s = append(s, 0)
	}
	s[bit/64] |= 1 << (bit % 64)
	return s
}

// nodeSets turns the value of a node's networks (the annotation text) into
// a bitset, once per distinct value. Nodes with the same networks share a
// value, so a cluster of thousands of nodes has a handful of entries.
// lookup is lock-free and allocation-free: Filter calls it per node.
//
// Only names some node value listed are interned, so pods asking for
// arbitrary names cannot grow the tables.
type nodeSets struct {
	mu     sync.Mutex                        // serializes writers
	names  atomic.Pointer[map[string]int]    // network name → bit; copy-on-write under mu
	values atomic.Pointer[map[string]bitset] // node value → its networks; copy-on-write under mu
}

func newNodeSets() *nodeSets {
	s := &nodeSets{}
	s.names.Store(&map[string]int{})
	s.values.Store(&map[string]bitset{})
	return s
}

// lookup returns the networks of a node value already seen.
func (s *nodeSets) lookup(value string) (bitset, bool) {
	b, ok := (*s.values.Load())[value]
	return b, ok
}

// get returns the networks of a node value, parsing it if it was not seen
// before. A value that does not parse is a node without networks.
func (s *nodeSets) get(value string) bitset {
	if b, ok := s.lookup(value); ok {
		return b
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.values.Load()
	if b, ok := old[value]; ok {
		return b
	}
	var b bitset
	names, err := netrequest.ParseNodeNetworks(value)
	if err == nil {
		interned := *s.names.Load()
		for _, n := range names {
			bit, ok := interned[n]
			if !ok {
				interned = maps.Clone(interned)
				bit = len(interned)
				interned[n] = bit
				s.names.Store(&interned)
			}
			b = b.with(bit)
		}
	}
	next := map[string]bitset{}
	if len(old) < maxCachedValues {
		next = maps.Clone(old)
	}
	next[value] = b
	s.values.Store(&next)
	return b
}

// bits returns the bitset of names, and the names no node value has ever
// listed (which no node can have). It is lock-free.
func (s *nodeSets) bits(names []string) (bitset, []string) {
	interned := *s.names.Load()
	var b bitset
	var unknown []string
	for _, n := range names {
		if bit, ok := interned[n]; ok {
			b = b.with(bit)
		} else {
			unknown = append(unknown, n)
		}
	}
	return b, unknown
}
