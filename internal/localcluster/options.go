package localcluster

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// Options configure a cluster. Up and Down validate them once and never
// change them; everything derived from them (paths, per-node settings) is
// the cluster's layout. The zero value is not usable: start from
// DefaultOptions, which derives every path from a repository's _output dir.
type Options struct {
	// BinDir holds the built binaries (etcd, containerd, ctr,
	// containerd-shim-runc-v2, cri-proxy, the stock kube-* and
	// pod-networks-scheduler), BinDir/patched the patched Kubernetes and
	// kubectl, and BinDir/cni the CNI plugins.
	BinDir string
	// ImagesDir holds pause.tar and toolbox.tar, imported into every node.
	ImagesDir string
	// StateDir holds all cluster state and logs; Down empties it but for logs.
	StateDir string
	// RunDir holds unix sockets and runtime state that need short paths.
	RunDir string
	// Nodes is the number of nodes (at least 1).
	Nodes int
	// NetworkScheduler runs pod-networks-scheduler, the kube-scheduler with
	// the NodeNetworks plugin, with scheduler-plugin/config's
	// configuration. SchedulerBinary and SchedulerConfig override either.
	NetworkScheduler bool
	// SchedulerBinary replaces the built kube-scheduler when set.
	SchedulerBinary string
	// StockScheduler runs the stock kube-scheduler, without feature gates,
	// though the rest of the control plane is patched (version skew).
	StockScheduler bool
	// SchedulerConfig, when set, is the path of a KubeSchedulerConfiguration
	// passed with --config; its clientConnection.kubeconfig is set to the
	// scheduler's kubeconfig.
	SchedulerConfig string
	// CRIProxy puts the project's CRI proxy (BinDir/cri-proxy) in front of
	// each node's containerd: kubelet talks to the proxy, which attaches the
	// networks of the node's networks directory and publishes them.
	CRIProxy bool
	// Patched runs the Kubernetes binaries of BinDir/patched (the PodNetworks
	// API, hack/build-kube-patched.sh), with the PodNetworks feature gate set
	// to PodNetworksGate on every component. Off, the stock binaries run.
	Patched         bool
	PodNetworksGate bool
	// ProxyNodeAnnotation has the CRI proxies publish node networks as the
	// node annotation too. Off, only node.status.networks (patched kubelet,
	// gate on) tells the scheduler.
	ProxyNodeAnnotation bool
	// NodeSkew sets nodes apart from the options above, by node name:
	// version skew and mixed runtimes in one cluster.
	NodeSkew map[string]NodeSkew
	// NodeNetworks maps a node name to a directory of CNI network config
	// lists copied into that node's networks directory at bring-up. In
	// them, {{NODE}}, {{NODE_INDEX}} and {{NODE_DIR}} are replaced by the
	// node's name, 1-based index and state dir, so one set of files can
	// give each node its own bridge, subnet and IPAM dir.
	NodeNetworks map[string]string
	// Runc is the runc binary containerd runs.
	Runc string
	// Ports: etcd client (peer is +1), apiserver, controller-manager,
	// scheduler, and the first kubelet (node i uses KubeletPort+10*(i-1),
	// healthz on that minus 2 and its CRI proxy's metrics on that plus 5).
	EtcdPort, APIServerPort, ControllerManagerPort, SchedulerPort, KubeletPort int
	// ReadyTimeout bounds bring-up from first process to all nodes Ready.
	ReadyTimeout time.Duration
	// Logf receives progress lines; nil discards them.
	Logf func(format string, args ...any)
}

// NodeSkew is how one node differs from the cluster's options.
type NodeSkew struct {
	// NoCRIProxy has the node's kubelet talk to containerd directly, though
	// the cluster runs CRI proxies.
	NoCRIProxy bool
	// StockKubelet runs the stock kubelet, which knows nothing of the
	// networks API, though the cluster runs the patched build.
	StockKubelet bool
	// GateOff turns the PodNetworks gate off on the node's patched kubelet.
	GateOff bool
}

// DefaultOptions returns the options for a cluster whose binaries, images and
// state live under outputDir (the repository's _output).
func DefaultOptions(outputDir string) Options {
	return Options{
		BinDir:                filepath.Join(outputDir, "bin"),
		ImagesDir:             filepath.Join(outputDir, "images"),
		StateDir:              filepath.Join(outputDir, "cluster"),
		RunDir:                "/run/pod-networks",
		Nodes:                 2,
		CRIProxy:              true,
		NetworkScheduler:      true,
		Patched:               true,
		PodNetworksGate:       true,
		ProxyNodeAnnotation:   true,
		Runc:                  "/usr/sbin/runc",
		EtcdPort:              12379,
		APIServerPort:         16443,
		ControllerManagerPort: 20257,
		SchedulerPort:         20259,
		KubeletPort:           21250,
		ReadyTimeout:          2 * time.Minute,
	}
}

// maxNodes keeps node subnets (10.244.<i>.0/24), bridge names and ports apart.
const maxNodes = 50

// Validate reports every option that cannot work, naming it.
func (o Options) Validate() error {
	var errs []error
	if o.Nodes < 1 || o.Nodes > maxNodes {
		errs = append(errs, fmt.Errorf("nodes: %d is out of range 1..%d", o.Nodes, maxNodes))
	}
	for name, p := range map[string]string{"bin dir": o.BinDir, "images dir": o.ImagesDir, "state dir": o.StateDir, "run dir": o.RunDir} {
		if !filepath.IsAbs(p) {
			errs = append(errs, fmt.Errorf("%s: %q is not an absolute path", name, p))
		}
	}
	// containerd refuses a shim socket dir longer than 42 bytes.
	if l := len(filepath.Join(o.RunDir, "node99", "s")); l > 42 {
		errs = append(errs, fmt.Errorf("run dir: %q is too long for containerd's shim socket dir (%d > 42 bytes)", o.RunDir, l))
	}
	for node := range o.NodeSkew {
		if !o.isNode(node) {
			errs = append(errs, fmt.Errorf("node skew: unknown node %q (nodes are node1..node%d)", node, o.Nodes))
		}
	}
	for node, dir := range o.NodeNetworks {
		if !o.isNode(node) {
			errs = append(errs, fmt.Errorf("node networks: unknown node %q (nodes are node1..node%d)", node, o.Nodes))
		} else if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			errs = append(errs, fmt.Errorf("node networks: %s: %q is not a directory", node, dir))
		}
	}
	return errors.Join(errs...)
}

// LogPath is the log file of a component (etcd, kube-apiserver,
// node1-kubelet, ...).
func (o Options) LogPath(component string) string {
	return filepath.Join(o.StateDir, "logs", component+".log")
}

func (o Options) logf(format string, args ...any) {
	if o.Logf != nil {
		o.Logf(format, args...)
	}
}

// isNode reports whether name is one of the cluster's nodes.
func (o Options) isNode(name string) bool {
	var i int
	_, err := fmt.Sscanf(name, "node%d", &i)
	return err == nil && name == nodeName(i) && i >= 1 && i <= o.Nodes
}
