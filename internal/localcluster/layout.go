package localcluster

import (
	"fmt"
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
}

// ContainerdSocket is the node's containerd gRPC socket.
func (n Node) ContainerdSocket() string { return filepath.Join(n.RunDir, "containerd.sock") }

// ProxySocket is the node's CRI proxy socket.
func (n Node) ProxySocket() string { return filepath.Join(n.RunDir, "cri-proxy.sock") }

// NetworksDir is the node's directory of extra CNI network config lists,
// separate from containerd's CNI conf dir (whose first file is every pod's
// primary network).
func (n Node) NetworksDir() string { return filepath.Join(n.Dir, "networks") }

// CNIConfDir is containerd's CNI conf dir for the node's primary network.
func (n Node) CNIConfDir() string { return filepath.Join(n.Dir, "cni", "net.d") }

// KubeletDir is kubelet's --root-dir.
func (n Node) KubeletDir() string { return filepath.Join(n.Dir, "kubelet") }

// nodes lists the cluster's nodes in order.
func (o *Options) nodes() []Node {
	out := make([]Node, 0, o.Nodes)
	for i := 1; i <= o.Nodes; i++ {
		name := fmt.Sprintf("node%d", i)
		out = append(out, Node{
			Name:        name,
			Index:       i,
			Dir:         filepath.Join(o.StateDir, "nodes", name),
			RunDir:      filepath.Join(o.RunDir, name),
			KubeletPort: o.KubeletPort + 10*(i-1),
			HealthzPort: o.KubeletPort + 10*(i-1) - 2,
			ProxyPort:   o.KubeletPort + 10*(i-1) + 5,
			Bridge:      fmt.Sprintf("pnbr%d", i),
			Subnet:      fmt.Sprintf("10.244.%d.0/24", i),
			CgroupRoot:  fmt.Sprintf("/pod-networks-%s", name),
		})
	}
	return out
}

// Nodes lists the nodes the options describe.
func (o *Options) NodeList() []Node { return o.nodes() }

func (o *Options) pkiDir() string      { return filepath.Join(o.StateDir, "pki") }
func (o *Options) logDir() string      { return filepath.Join(o.StateDir, "logs") }
func (o *Options) pidDir() string      { return filepath.Join(o.StateDir, "pids") }
func (o *Options) hostFile() string    { return filepath.Join(o.StateDir, "host.json") }
func (o *Options) ownerFile() string   { return filepath.Join(o.RunDir, "owner") }
func (o *Options) lockFile() string    { return o.StateDir + ".lock" }
func (o *Options) etcdDir() string     { return filepath.Join(o.StateDir, "etcd") }
func (o *Options) cniBinDir() string   { return filepath.Join(o.BinDir, "cni") }
func (o *Options) bin(n string) string { return filepath.Join(o.BinDir, n) }

// kubeBin is a Kubernetes binary: the patched build's when Options.Patched.
func (o *Options) kubeBin(n string) string {
	if o.Patched {
		return filepath.Join(o.BinDir, "patched", n)
	}
	return o.bin(n)
}

// featureGateArgs are the --feature-gates flags of the Kubernetes control
// plane components: PodNetworks on or off in the patched build, none in the
// stock one (which does not know the gate).
func (o *Options) featureGateArgs() []string {
	if !o.Patched {
		return nil
	}
	return []string{fmt.Sprintf("--feature-gates=PodNetworks=%t", o.PodNetworksGate)}
}

// Kubeconfig is the path of the cluster admin's kubeconfig.
func (o *Options) Kubeconfig() string { return filepath.Join(o.StateDir, "kubeconfig") }

// LogPath is the log file of a component (etcd, kube-apiserver, node1-kubelet, ...).
func (o *Options) LogPath(component string) string {
	return filepath.Join(o.logDir(), component+".log")
}

// APIServerURL is the address kubectl and the components use.
func (o *Options) APIServerURL() string { return fmt.Sprintf("https://127.0.0.1:%d", o.APIServerPort) }
