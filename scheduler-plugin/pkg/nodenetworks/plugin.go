package nodenetworks

import (
	"context"
	"fmt"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/tools/cache"
	fwk "k8s.io/kube-scheduler/framework"
)

const (
	// Name is the plugin's name in the registry and in configurations.
	Name = "NodeNetworks"
	// ErrReasonMissing starts the reason a node is rejected with; where the
	// node's networks were read and the missing networks follow, e.g.
	// "node(s) didn't have the requested network(s) in status.networks: red".
	ErrReasonMissing = "node(s) didn't have the requested network(s)"
	// SignerName keys the plugin's fragment of pod signatures.
	SignerName = "v1.Pod.Networks().Names()"

	stateKey fwk.StateKey = "PreFilter" + Name
)

// Plugin filters out nodes that lack a network the pod asks for.
//
// Where a pod's request and a node's networks are read is the business of
// the source files, one per build: source.go (the stock API: annotations),
// source_native.go (the patched API: spec.networks and status.networks,
// with the annotations for pods that do not use the field) and
// source_intree.go (the in-tree plugin of the patched Kubernetes: the
// native fields only). Each defines the type source (the plugin's
// configuration), New, and the methods podRequest, nodeNetworks, nodeValues
// and where.
type Plugin struct {
	source
	always   map[string]bool
	sets     *nodeSets
	fitCache *fitCache
}

var (
	_ fwk.PreFilterPlugin   = &Plugin{}
	_ fwk.FilterPlugin      = &Plugin{}
	_ fwk.EnqueueExtensions = &Plugin{}
	_ fwk.SignPlugin        = &Plugin{}
)

// podKind is how a pod asks for networks, which decides where a node's
// networks are read for it.
type podKind uint8

const (
	// nativePod asks in spec.networks; nodes' status.networks alone
	// answers.
	nativePod podKind = iota
	// annotationPod asks in the annotation; a node's status.networks
	// answers when the node reports any, else its annotation.
	annotationPod
)

// String names the request's source, for signatures and cache keys.
func (k podKind) String() string {
	if k == nativePod {
		return "spec.networks"
	}
	return "annotation"
}

// from is where a node's networks were read: one source, or a set of them
// (a PreFilter over many nodes).
type from uint8

const (
	fromStatus     from = 1 << iota // node.status.networks
	fromAnnotation                  // the node annotation
)

// request is a pod's request as its source gives it.
type request struct {
	kind  podKind
	names []string // the networks asked for, in order, maybe repeated
}

// nodeValues are a node's networks in every source the build reads, as the
// node has them: a change to any of them may change where a pod fits.
type nodeValues struct {
	status     []string // status.networks
	annotation string   // the node annotation
}

func (a nodeValues) equal(b nodeValues) bool {
	return a.annotation == b.annotation && slices.Equal(a.status, b.status)
}

func newPlugin(src source, always []string, parse func(string) ([]string, error)) *Plugin {
	p := &Plugin{source: src, always: map[string]bool{}, sets: newNodeSets(parse), fitCache: newFitCache()}
	for _, n := range always {
		p.always[n] = true
	}
	return p
}

// watchNodes keeps the interned networks of every node, and PreFilter's
// cache, fresh from the scheduler's node informer.
func (p *Plugin) watchNodes(h fwk.Handle) error {
	if h == nil || h.SharedInformerFactory() == nil {
		return nil
	}
	_, err := h.SharedInformerFactory().Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { p.sawNode(obj) },
		UpdateFunc: func(_, obj any) { p.sawNode(obj) },
		DeleteFunc: func(obj any) { p.forgetNode(obj) },
	})
	if err != nil {
		return fmt.Errorf("%s: watch nodes: %w", Name, err)
	}
	return nil
}

// sawNode interns a node's networks, in every source, ahead of Filter and
// records them for PreFilter's cache.
func (p *Plugin) sawNode(obj any) {
	n, ok := obj.(*v1.Node)
	if !ok {
		return
	}
	v := p.nodeValues(n)
	if len(v.status) > 0 {
		p.sets.list(v.status)
	}
	if v.annotation != "" {
		p.sets.value(v.annotation)
	}
	p.fitCache.setNode(n.Name, v)
}

// forgetNode drops a deleted node from PreFilter's cache.
func (p *Plugin) forgetNode(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	if n, ok := obj.(*v1.Node); ok {
		p.fitCache.deleteNode(n.Name)
	}
}

// Name returns the plugin's name.
func (p *Plugin) Name() string { return Name }

// state is the pod's request, computed once per cycle by PreFilter.
type state struct {
	kind    podKind
	names   []string // requested networks a node must list, sorted
	bits    bitset   // names known to some node
	unknown []string // names no node lists
	// missingAll is, per source, the rejection reason of a node with none
	// of names, the common case, built once.
	missingAll [fromAnnotation + 1]string
}

// Clone returns s: it is never modified after PreFilter.
func (s *state) Clone() fwk.StateData { return s }

// required returns how the pod asks and the sorted names of the networks
// it needs from a node (its request less the networks every node has); no
// names when there are none.
func (p *Plugin) required(pod *v1.Pod) (podKind, []string, error) {
	req, err := p.podRequest(pod)
	if err != nil {
		return req.kind, nil, err
	}
	var names []string
	for _, n := range req.names {
		if !p.always[n] && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return req.kind, names, nil
}

// missing returns the rejection reason for names (joined) missing from
// nodes whose networks were read from f.
func (p *Plugin) missing(f from, joined string) string {
	var where []string
	for _, one := range []from{fromStatus, fromAnnotation} {
		if f&one != 0 {
			where = append(where, p.where(one))
		}
	}
	if len(where) == 0 { // no node at all
		return ErrReasonMissing + ": " + joined
	}
	return ErrReasonMissing + " in " + strings.Join(where, " or ") + ": " + joined
}

// fitKey keys the fit cache: pods with the same names but of another kind
// read other sources, so fit other nodes.
func fitKey(kind podKind, names []string) string {
	return kind.String() + ":" + strings.Join(names, ",")
}

// PreFilter reads the pod's request: Skip when it asks for nothing nodes
// must have; UnschedulableAndUnresolvable when the request is malformed or
// no node has every network. Otherwise it narrows the nodes the scheduler
// evaluates to those that have them (PreFilterResult), so the other filters
// never see a node this plugin would reject: with networks on a fraction of
// the nodes, that is most of the scheduler's filtering work saved. Filter
// still checks each node.
func (p *Plugin) PreFilter(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	kind, names, err := p.required(pod)
	if err != nil {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, err.Error())
	}
	if len(names) == 0 {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	joined := strings.Join(names, ", ")
	s := &state{kind: kind, names: names}
	s.missingAll[fromStatus] = p.missing(fromStatus, joined)
	s.missingAll[fromAnnotation] = p.missing(fromAnnotation, joined)
	s.bits, s.unknown = p.sets.bits(names)
	cs.Write(stateKey, s)
	if nodes == nil { // called without the node list: Filter decides alone
		return nil, nil
	}
	key := fitKey(kind, names)
	fit, cached := p.fitCache.get(key, len(nodes))
	var read from
	if !cached || fit.Len() == 0 { // never reject on what the cache says
		fit, read = p.scan(s, nodes)
		p.fitCache.put(key, fit, len(nodes))
	}
	if fit.Len() == 0 {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, p.missing(read, joined))
	}
	return &fwk.PreFilterResult{NodeNames: fit}, nil
}

// scan returns the names of the nodes that have every network of s, and
// the sources their networks were read from.
func (p *Plugin) scan(s *state, nodes []fwk.NodeInfo) (sets.Set[string], from) {
	interned := p.sets.interned()
	fit, read := p.fitNodes(s, nodes)
	if len(s.unknown) > 0 && p.sets.interned() != interned {
		// A node interned just now may list a name that was unknown.
		s.bits, s.unknown = p.sets.bits(s.names)
		fit, read = p.fitNodes(s, nodes)
	}
	return fit, read
}

// fitNodes returns the names of the nodes that have every network of s,
// and the sources their networks were read from.
func (p *Plugin) fitNodes(s *state, nodes []fwk.NodeInfo) (sets.Set[string], from) {
	fit := sets.New[string]()
	var read from
	for _, ni := range nodes {
		n := ni.Node()
		if n == nil {
			continue
		}
		have, f := p.nodeNetworks(n, s.kind)
		read |= f
		if len(s.unknown) == 0 && have.has(s.bits) {
			fit.Insert(n.Name)
		}
	}
	return fit, read
}

// PreFilterExtensions returns nil: other pods do not change a node's
// networks.
func (p *Plugin) PreFilterExtensions() fwk.PreFilterExtensions { return nil }

// Filter rejects a node that lacks any requested network. It allocates
// nothing when the node fits.
func (p *Plugin) Filter(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodeInfo fwk.NodeInfo) *fwk.Status {
	data, err := cs.Read(stateKey)
	if err != nil {
		return fwk.AsStatus(fmt.Errorf("%s: read PreFilter state: %w", Name, err))
	}
	s, ok := data.(*state)
	if !ok {
		return fwk.AsStatus(fmt.Errorf("%s: PreFilter state has type %T", Name, data))
	}
	node := nodeInfo.Node()
	if node == nil {
		return fwk.AsStatus(fmt.Errorf("%s: node not found", Name))
	}
	have, f := p.nodeNetworks(node, s.kind)
	if len(s.unknown) == 0 && have.has(s.bits) {
		return nil
	}
	if len(s.unknown) > 0 && p.fits(s.names, have) {
		return nil // a node listed them after PreFilter
	}
	return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, p.reason(s, have, f))
}

// reason names the requested networks a node with have (read from f)
// lacks.
func (p *Plugin) reason(s *state, have bitset, f from) string {
	var buf [16]string // requests have at most 16 networks
	missing := buf[:0]
	interned := *p.sets.names.Load()
	for _, n := range s.names {
		if bit, ok := interned[n]; !ok || !have.hasBit(bit) {
			missing = append(missing, n)
		}
	}
	if len(missing) == len(s.names) {
		return s.missingAll[f]
	}
	return p.missing(f, strings.Join(missing, ", "))
}

// signature is the plugin's fragment of a pod's signature: pods that ask
// the same way for the same networks fit the same nodes.
type signature struct {
	Request  string   `json:"request"`
	Networks []string `json:"networks"`
}

// SignPod signs the pod with how it asks and the networks it needs from a
// node. A malformed request is not signed.
func (p *Plugin) SignPod(ctx context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	kind, names, err := p.required(pod)
	if err != nil {
		return nil, fwk.NewStatus(fwk.Unschedulable, err.Error())
	}
	sig := signature{Request: kind.String(), Networks: names}
	if len(names) == 0 { // needs nothing from nodes, however it asks
		sig = signature{Networks: []string{}}
	}
	return []fwk.SignFragment{{Key: SignerName, Value: sig}}, nil
}
