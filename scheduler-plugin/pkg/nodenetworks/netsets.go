package nodenetworks

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// maxCachedValues bounds each cache of node networks. Past it the cache
// starts over; values still in use are interned again once.
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

// hasBit reports whether s holds bit.
func (s bitset) hasBit(bit int) bool {
	return bit/64 < len(s) && s[bit/64]&(1<<(bit%64)) != 0
}

func (s bitset) with(bit int) bitset {
	for len(s) <= bit/64 {
		s = append(s, 0)
	}
	s[bit/64] |= 1 << (bit % 64)
	return s
}

// listEntry is a node name list already seen and its networks.
type listEntry struct {
	names []string
	bits  bitset
}

// nodeSets turns a node's networks into a bitset, once per distinct value:
// a list of names (status.networks) or an annotation value, which parse
// turns into names. Nodes with the same networks share a value, so a
// cluster of thousands of nodes has a handful of entries. The lookups are
// lock-free and allocation-free: Filter calls them per node.
//
// Only names some node lists are interned, so pods asking for arbitrary
// names cannot grow the tables.
type nodeSets struct {
	parse  func(string) ([]string, error)         // annotation value → names; nil without annotations
	mu     sync.Mutex                             // serializes writers
	names  atomic.Pointer[map[string]int]         // network name → bit; copy-on-write under mu
	values atomic.Pointer[map[string]bitset]      // annotation value → its networks; copy-on-write under mu
	lists  atomic.Pointer[map[uint64][]listEntry] // hash of a name list → lists with that hash; copy-on-write under mu
}

func newNodeSets(parse func(string) ([]string, error)) *nodeSets {
	s := &nodeSets{parse: parse}
	s.names.Store(&map[string]int{})
	s.values.Store(&map[string]bitset{})
	s.lists.Store(&map[uint64][]listEntry{})
	return s
}

// interned returns how many names are interned: a change tells a reader
// that names unknown to it may be known now.
func (s *nodeSets) interned() int { return len(*s.names.Load()) }

// lookupValue returns the networks of an annotation value already seen.
func (s *nodeSets) lookupValue(value string) (bitset, bool) {
	b, ok := (*s.values.Load())[value]
	return b, ok
}

// value returns the networks of an annotation value, parsing it if it was
// not seen before. A value that does not parse is a node without networks.
func (s *nodeSets) value(value string) bitset {
	if b, ok := s.lookupValue(value); ok {
		return b
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := *s.values.Load()
	if b, ok := old[value]; ok {
		return b
	}
	var b bitset
	if s.parse != nil {
		if names, err := s.parse(value); err == nil {
			b = s.internLocked(names)
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

// lookupList returns the networks of a name list already seen.
func (s *nodeSets) lookupList(names []string) (bitset, bool) {
	if len(names) == 0 {
		return nil, true
	}
	for _, e := range (*s.lists.Load())[hashNames(names)] {
		if slices.Equal(e.names, names) {
			return e.bits, true
		}
	}
	return nil, false
}

// list returns the networks of a name list (status.networks), interning
// them if the list was not seen before. The list is kept, not copied: node
// objects from the informer are never modified.
func (s *nodeSets) list(names []string) bitset {
	if b, ok := s.lookupList(names); ok {
		return b
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h := hashNames(names)
	old := *s.lists.Load()
	for _, e := range old[h] {
		if slices.Equal(e.names, names) {
			return e.bits
		}
	}
	b := s.internLocked(names)
	next := map[uint64][]listEntry{}
	if len(old) < maxCachedValues {
		next = maps.Clone(old)
	}
	next[h] = append(slices.Clip(next[h]), listEntry{names: names, bits: b})
	s.lists.Store(&next)
	return b
}

// internLocked returns the bitset of names, interning the new ones. s.mu
// must be held.
func (s *nodeSets) internLocked(names []string) bitset {
	var b bitset
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
	return b
}

// bits returns the bitset of names, and the names no node has ever listed
// (which no node can have). It is lock-free.
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

// hashNames is FNV-1a over the names, each followed by a zero byte (never
// part of a network name). It allocates nothing.
func hashNames(names []string) uint64 {
	const offset, prime = 14695981039346656037, 1099511628211
	h := uint64(offset)
	for _, n := range names {
		for i := 0; i < len(n); i++ {
			h = (h ^ uint64(n[i])) * prime
		}
		h *= prime // ^ 0
	}
	return h
}
