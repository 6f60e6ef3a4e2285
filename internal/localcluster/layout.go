package localcluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Node is one node's identity and the paths and ports that keep it apart
// from the other nodes on the same machine.
type Node struct {
	Name  string // node1, node2, ...
	Index int    // 1-based

	Dir         string // state: <StateDir>/nodes/<name>
	RunDir      string // sockets: <RunDir>/<name>
	KubeletPort int
	HealthzPort int
	ProxyPort   int    // the CRI proxy's /metrics and /healthz
	Bridge      string // CNI bridge on the host
	Subnet      string // pod subnet of the primary network
	CgroupRoot  string // kubelet cgroupRoot, created in every hierarchy
	// CRIEndpoint is kubelet's runtime endpoint: the CRI proxy's socket
	// when the node runs one, containerd's otherwise.
	CRIEndpoint string
	// CRIProxy: a CRI proxy runs in front of the node's containerd.
	CRIProxy bool
	// PatchedKubelet: the kubelet is the patched build, with the
	// PodNetworks gate set to PodNetworksGate.
	PatchedKubelet  bool
	PodNetworksGate bool
}

func nodeName(i int) string { return fmt.Sprintf("node%d", i) }

// ContainerdSocket is the node's containerd gRPC socket.
func (n Node) ContainerdSocket() string { return filepath.Join(n.RunDir, "containerd.sock") }

// ProxySocket is the node's CRI proxy socket.
func (n Node) ProxySocket() string { return filepath.Join(n.RunDir, "cri-proxy.sock") }

// NetworksDir is the node's directory of extra CNI network config lists,
// separate from containerd's CNI conf dir (whose first file is every pod's
// primary network).
func (n Node) NetworksDir() string { return filepath.Join(n.Dir, "networks") }

// ManifestsDir is the node's static pod directory (kubelet staticPodPath).
func (n Node) ManifestsDir() string { return filepath.Join(n.Dir, "manifests") }

// CNIConfDir is containerd's CNI conf dir for the node's primary network.
func (n Node) CNIConfDir() string { return filepath.Join(n.Dir, "cni", "net.d") }

// KubeletDir is kubelet's --root-dir.
func (n Node) KubeletDir() string { return filepath.Join(n.Dir, "kubelet") }

// ProxyStateDir is the CRI proxy's -state-dir.
func (n Node) ProxyStateDir() string { return filepath.Join(n.Dir, "cri-proxy") }

func (n Node) containerdConfig() string { return filepath.Join(n.Dir, "containerd.toml") }
func (n Node) kubeletConfig() string    { return filepath.Join(n.Dir, "kubelet.yaml") }

// layout is where everything of a cluster lives: the control plane's files
// and each node's paths and ports. It is derived from validated Options and
// never changes; Down and Snapshot adopt the node list a running cluster
// was brought up with (see saved).
type layout struct {
	opts  Options
	nodes []Node
}

func newLayout(o Options) layout {
	l := layout{opts: o}
	for i := 1; i <= o.Nodes; i++ {
		name := nodeName(i)
		n := Node{
			Name:        name,
			Index:       i,
			Dir:         filepath.Join(o.StateDir, "nodes", name),
			RunDir:      filepath.Join(o.RunDir, name),
			KubeletPort: o.KubeletPort + 10*(i-1),
			HealthzPort: o.KubeletPort + 10*(i-1) - 2,
			ProxyPort:   o.KubeletPort + 10*(i-1) + 5,
			Bridge:      fmt.Sprintf("pnbr%d", i),
			Subnet:      fmt.Sprintf("10.244.%d.0/24", i),
			CgroupRoot:  "/pod-networks-" + name,
		}
		skew := o.NodeSkew[name]
		n.CRIProxy = o.CRIProxy && !skew.NoCRIProxy
		n.PatchedKubelet = o.Patched && !skew.StockKubelet
		n.PodNetworksGate = n.PatchedKubelet && o.PodNetworksGate && !skew.GateOff
		n.CRIEndpoint = "unix://" + n.ContainerdSocket()
		if n.CRIProxy {
			n.CRIEndpoint = "unix://" + n.ProxySocket()
		}
		l.nodes = append(l.nodes, n)
	}
	return l
}

func (l layout) node(name string) (Node, error) {
	for _, n := range l.nodes {
		if n.Name == name {
			return n, nil
		}
	}
	return Node{}, fmt.Errorf("no node %q (nodes are node1..node%d)", name, len(l.nodes))
}

func (l layout) pkiDir() string    { return filepath.Join(l.opts.StateDir, "pki") }
func (l layout) logDir() string    { return filepath.Join(l.opts.StateDir, "logs") }
func (l layout) pidDir() string    { return filepath.Join(l.opts.StateDir, "pids") }
func (l layout) configDir() string { return filepath.Join(l.opts.StateDir, "config") }
func (l layout) hostFile() string  { return filepath.Join(l.opts.StateDir, "host.json") }
func (l layout) savedFile() string { return filepath.Join(l.opts.StateDir, "cluster.json") }
func (l layout) ownerFile() string { return filepath.Join(l.opts.RunDir, "owner") }
func (l layout) lockFile() string  { return l.opts.StateDir + ".lock" }
func (l layout) etcdDir() string   { return filepath.Join(l.opts.StateDir, "etcd") }
func (l layout) cniBinDir() string { return filepath.Join(l.opts.BinDir, "cni") }
func (l layout) bin(n string) string {
	return filepath.Join(l.opts.BinDir, n)
}

// kubeBin is a Kubernetes binary: the patched build's when Options.Patched.
func (l layout) kubeBin(n string) string {
	if l.opts.Patched {
		return filepath.Join(l.opts.BinDir, "patched", n)
	}
	return l.bin(n)
}

// kubeletBin is the node's kubelet: the patched build's unless the node
// runs the stock one.
func (l layout) kubeletBin(n Node) string {
	if n.PatchedKubelet {
		return filepath.Join(l.opts.BinDir, "patched", "kubelet")
	}
	return l.bin("kubelet")
}

// kubectl is a client, and the patched one speaks to either build: only
// the patched build makes it.
func (l layout) kubectl() string { return filepath.Join(l.opts.BinDir, "patched", "kubectl") }

func (l layout) certPath(name string) string { return filepath.Join(l.pkiDir(), name+".crt") }
func (l layout) keyPath(name string) string  { return filepath.Join(l.pkiDir(), name+".key") }

// kubeconfig is the kubeconfig of an identity (see identities); the
// admin's is the cluster's Kubeconfig.
func (l layout) kubeconfig(identity string) string {
	if identity == "admin" {
		return filepath.Join(l.opts.StateDir, "kubeconfig")
	}
	return filepath.Join(l.configDir(), identity+".kubeconfig")
}

func (l layout) apiServerURL() string {
	return fmt.Sprintf("https://127.0.0.1:%d", l.opts.APIServerPort)
}

// featureGateArgs are the --feature-gates flags of the Kubernetes control
// plane components: PodNetworks on or off in the patched build, none in the
// stock one (which does not know the gate).
func (l layout) featureGateArgs() []string {
	if !l.opts.Patched {
		return nil
	}
	return []string{fmt.Sprintf("--feature-gates=PodNetworks=%t", l.opts.PodNetworksGate)}
}

// saved is what Down needs of a cluster that Up made with other options:
// its nodes, and the CRI endpoint each kubelet used.
type saved struct {
	Nodes     int               `json:"nodes"`
	Endpoints map[string]string `json:"criEndpoints"`
}

func (l layout) save() error {
	s := saved{Nodes: len(l.nodes), Endpoints: map[string]string{}}
	for _, n := range l.nodes {
		s.Endpoints[n.Name] = n.CRIEndpoint
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(l.savedFile(), b, 0o644)
}

// adoptSaved returns the layout of the cluster Up made in this state dir,
// so that Down and Snapshot need no options repeated; l itself when there
// is none.
func (l layout) adoptSaved() layout {
	b, err := os.ReadFile(l.savedFile())
	if errors.Is(err, os.ErrNotExist) {
		return l
	}
	var s saved
	if err != nil || json.Unmarshal(b, &s) != nil || s.Nodes < 1 {
		return l
	}
	o := l.opts
	o.Nodes = s.Nodes
	adopted := newLayout(o)
	for i, n := range adopted.nodes {
		if e := s.Endpoints[n.Name]; e != "" {
			adopted.nodes[i].CRIEndpoint = e
		}
	}
	return adopted
}
