package nodenetworks

import (
	"context"
	"fmt"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/sets"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
	fwk "k8s.io/kube-scheduler/framework"

	"sigs.k8s.io/pod-networks/pkg/netrequest"
)

const (
	// Name is the plugin's name in the registry and in configurations.
	Name = "NodeNetworks"
	// ErrReasonMissing starts the reason a node is rejected with; the
	// missing networks follow.
	ErrReasonMissing = "node(s) didn't have the requested network(s)"
	// SignerName keys the plugin's fragment of pod signatures.
	SignerName = "v1.Pod.Networks().Names()"

	stateKey fwk.StateKey = "PreFilter" + Name
)

// Plugin filters out nodes that lack a network the pod asks for.
type Plugin struct {
	args     Args
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

// New is the plugin's factory (runtime.PluginFactory). It keeps the parsed
// networks of every node value fresh from the scheduler's node informer.
func New(ctx context.Context, obj runtime.Object, h fwk.Handle) (fwk.Plugin, error) {
	args, err := decodeArgs(obj)
	if err != nil {
		return nil, err
	}
	p := newPlugin(args)
	if h != nil && h.SharedInformerFactory() != nil {
		_, err := h.SharedInformerFactory().Core().V1().Nodes().Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { p.sawNode(obj) },
			UpdateFunc: func(_, obj any) { p.sawNode(obj) },
			DeleteFunc: func(obj any) { p.forgetNode(obj) },
		})
		if err != nil {
			return nil, fmt.Errorf("%s: watch nodes: %w", Name, err)
		}
	}
	klog.FromContext(ctx).V(2).Info("plugin ready", "plugin", Name, "podAnnotation", args.PodAnnotation,
		"nodeAnnotation", args.NodeAnnotation, "alwaysAvailable", args.AlwaysAvailable)
	return p, nil
}

func newPlugin(args Args) *Plugin {
	p := &Plugin{args: args, always: map[string]bool{}, sets: newNodeSets(), fitCache: newFitCache()}
	for _, n := range args.AlwaysAvailable {
		p.always[n] = true
	}
	return p
}

// sawNode parses a node's networks ahead of Filter and records them for
// PreFilter's cache.
func (p *Plugin) sawNode(obj any) {
	if n, ok := obj.(*v1.Node); ok {
		v := p.nodeNetworks(n)
		p.sets.get(v)
		p.fitCache.setNode(n.Name, v)
	}
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
	names   []string // requested networks a node must list, sorted
	bits    bitset   // names known to some node value
	unknown []string // names no node value lists
	// missingAll is the rejection reason of a node with none of names,
	// the common case, built once.
	missingAll string
}

// Clone returns s: it is never modified after PreFilter.
func (s *state) Clone() fwk.StateData { return s }

// required returns the sorted names of the networks the pod needs from a
// node (its request less the networks every node has); nil when there are
// none.
func (p *Plugin) required(pod *v1.Pod) ([]string, error) {
	reqs, err := netrequest.Parse(p.podRequest(pod))
	if err != nil {
		return nil, err
	}
	var names []string
	for _, r := range reqs {
		if !p.always[r.Name] && !slices.Contains(names, r.Name) {
			names = append(names, r.Name)
		}
	}
	slices.Sort(names)
	return names, nil
}

// PreFilter parses the pod's request: Skip when it asks for nothing nodes
// must have; UnschedulableAndUnresolvable when the request is malformed or
// no node has every network. Otherwise it narrows the nodes the scheduler
// evaluates to those that have them (PreFilterResult), so the other filters
// never see a node this plugin would reject: with networks on a fraction of
// the nodes, that is most of the scheduler's filtering work saved. Filter
// still checks each node.
func (p *Plugin) PreFilter(ctx context.Context, cs fwk.CycleState, pod *v1.Pod, nodes []fwk.NodeInfo) (*fwk.PreFilterResult, *fwk.Status) {
	names, err := p.required(pod)
	if err != nil {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable,
			fmt.Sprintf("invalid network request (annotation %s): %v", p.args.PodAnnotation, err))
	}
	if len(names) == 0 {
		return nil, fwk.NewStatus(fwk.Skip)
	}
	s := &state{names: names, missingAll: ErrReasonMissing + ": " + strings.Join(names, ", ")}
	s.bits, s.unknown = p.sets.bits(names)
	cs.Write(stateKey, s)
	if nodes == nil { // called without the node list: Filter decides alone
		return nil, nil
	}
	key := strings.Join(names, ",")
	fit, cached := p.fitCache.get(key, len(nodes))
	if !cached || fit.Len() == 0 { // never reject on what the cache says
		fit = p.scan(s, nodes)
		p.fitCache.put(key, fit, len(nodes))
	}
	if fit.Len() == 0 {
		return nil, fwk.NewStatus(fwk.UnschedulableAndUnresolvable, s.missingAll)
	}
	return &fwk.PreFilterResult{NodeNames: fit}, nil
}

// scan returns the names of the nodes that have every network of s.
func (p *Plugin) scan(s *state, nodes []fwk.NodeInfo) sets.Set[string] {
	fit, parsed := p.fitNodes(s, nodes)
	if parsed && len(s.unknown) > 0 {
		// A node value parsed just now may list a name that was unknown.
		s.bits, s.unknown = p.sets.bits(s.names)
		fit, _ = p.fitNodes(s, nodes)
	}
	return fit
}

// fitNodes returns the names of the nodes that have every network of s, and
// whether a node value had to be parsed (one the informer had not shown).
func (p *Plugin) fitNodes(s *state, nodes []fwk.NodeInfo) (fit sets.Set[string], parsed bool) {
	fit = sets.New[string]()
	for _, ni := range nodes {
		n := ni.Node()
		if n == nil {
			continue
		}
		have, ok := p.sets.lookup(p.nodeNetworks(n))
		if !ok {
			have, parsed = p.sets.get(p.nodeNetworks(n)), true
		}
		if len(s.unknown) == 0 && have.has(s.bits) {
			fit.Insert(n.Name)
		}
	}
	return fit, parsed
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
	have, ok := p.sets.lookup(p.nodeNetworks(node))
	if !ok { // not seen by the informer yet
		have = p.sets.get(p.nodeNetworks(node))
	}
	if len(s.unknown) == 0 && have.has(s.bits) {
		return nil
	}
	if len(s.unknown) > 0 && p.fits(s.names, have) {
		return nil // a node value listed them after PreFilter
	}
	return fwk.NewStatus(fwk.UnschedulableAndUnresolvable, p.reason(s, have))
}

// reason names the requested networks a node with have lacks.
func (p *Plugin) reason(s *state, have bitset) string {
	var buf [netrequest.MaxNetworks]string
	missing := buf[:0]
	interned := *p.sets.names.Load()
	for _, n := range s.names {
		bit, ok := interned[n]
		if !ok || bit/64 >= len(have) || have[bit/64]&(1<<(bit%64)) == 0 {
			missing = append(missing, n)
		}
	}
	if len(missing) == len(s.names) {
		return s.missingAll
	}
	return ErrReasonMissing + ": " + strings.Join(missing, ", ")
}

// SignPod signs the pod with the networks it needs from a node: pods that
// need the same ones fit the same nodes. A malformed request is not signed.
func (p *Plugin) SignPod(ctx context.Context, pod *v1.Pod) ([]fwk.SignFragment, *fwk.Status) {
	names, err := p.required(pod)
	if err != nil {
		return nil, fwk.NewStatus(fwk.Unschedulable, err.Error())
	}
	if names == nil {
		names = []string{}
	}
	return []fwk.SignFragment{{Key: SignerName, Value: names}}, nil
}
