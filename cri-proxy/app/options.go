package app

import (
	"errors"
	"flag"
	"fmt"
	"path/filepath"
	"strings"
	"time"
)

// Options configure the daemon; each has a flag of the same meaning.
type Options struct {
	Listen            string
	Upstream          string
	NetworksDir       string
	CNIBinDirs        []string
	StateDir          string
	CNICacheDir       string
	RuntimeCNIConfDir string
	AttachConcurrency int
	MaxPluginProcs    int
	AttachTimeout     time.Duration
	PluginGOMAXPROCS  int
	ReconcileInterval time.Duration
	ResyncInterval    time.Duration
	ShutdownGrace     time.Duration
	MetricsAddress    string
	Kubeconfig        string
	NodeName          string
	NodeAnnotation    bool
	DefaultNetwork    string
}

func (o *Options) addFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Listen, "listen", "/run/cri-proxy/cri-proxy.sock", "unix socket kubelet connects to (created 0660; a stale one is replaced)")
	fs.StringVar(&o.Upstream, "upstream", "/run/containerd/containerd.sock", "containerd's CRI socket")
	fs.StringVar(&o.NetworksDir, "networks-dir", "/etc/cri-proxy/networks", "directory of CNI network config lists, one network each (not containerd's CNI conf dir)")
	o.CNIBinDirs = []string{"/opt/cni/bin"}
	fs.Var((*dirList)(&o.CNIBinDirs), "cni-bin-dir", "comma-separated CNI plugin directories")
	fs.StringVar(&o.StateDir, "state-dir", "/var/lib/cri-proxy", "where attachments are recorded, so they survive a restart")
	fs.StringVar(&o.CNICacheDir, "cni-cache-dir", "", "libcni cache (default <state-dir>/cni-cache)")
	fs.StringVar(&o.RuntimeCNIConfDir, "runtime-cni-conf-dir", "/etc/cni/net.d", "containerd's CNI conf dir (the pods' primary network): networks sharing a name or host-local lease dir with its networks are refused (empty: not checked)")
	fs.IntVar(&o.AttachConcurrency, "attach-concurrency", 4, "networks of one pod attached at once")
	fs.IntVar(&o.MaxPluginProcs, "max-plugin-processes", 16, "CNI plugin processes running at once on the node, all pods together (at least -attach-concurrency)")
	fs.DurationVar(&o.AttachTimeout, "attach-timeout", 30*time.Second, "time allowed to each network's ADD or DEL")
	fs.IntVar(&o.PluginGOMAXPROCS, "plugin-gomaxprocs", 1, "GOMAXPROCS of CNI plugin processes unless set in the environment (0: not set); one P starts a Go plugin faster")
	fs.DurationVar(&o.ReconcileInterval, "reconcile-interval", time.Minute, "how often attachments of vanished sandboxes are removed (and CNI GC runs)")
	fs.DurationVar(&o.ResyncInterval, "resync-interval", 30*time.Second, "how often network availability is re-checked besides file events")
	fs.DurationVar(&o.ShutdownGrace, "shutdown-grace", 15*time.Second, "on SIGTERM, how long calls in flight may finish before they are cancelled (handlers still roll back before exit)")
	fs.StringVar(&o.MetricsAddress, "metrics-address", "127.0.0.1:9615", "address of /metrics and /healthz (empty: off)")
	fs.StringVar(&o.Kubeconfig, "kubeconfig", "", "annotation mode: publish node networks and pod network-status through this kubeconfig")
	fs.StringVar(&o.NodeName, "node-name", "", "annotation mode: this node's name")
	fs.BoolVar(&o.NodeAnnotation, "node-annotation", true, "annotation mode: publish the node's networks as its annotation (off where kubelet publishes node.status.networks)")
	fs.StringVar(&o.DefaultNetwork, "default-network-name", "default", "name of the primary network (eth0) in pod network-status")
}

// dirList is a comma-separated list flag.
type dirList []string

func (l *dirList) String() string { return strings.Join(*l, ",") }
func (l *dirList) Set(v string) error {
	*l = nil
	for _, d := range strings.Split(v, ",") {
		if d = strings.TrimSpace(d); d != "" {
			*l = append(*l, d)
		}
	}
	return nil
}

func (o *Options) finish() error {
	if o.CNICacheDir == "" {
		o.CNICacheDir = filepath.Join(o.StateDir, "cni-cache")
	}
	var errs []error
	for name, v := range map[string]string{"listen": o.Listen, "upstream": o.Upstream, "networks-dir": o.NetworksDir, "state-dir": o.StateDir} {
		if v == "" {
			errs = append(errs, fmt.Errorf("-%s is required", name))
		}
	}
	if len(o.CNIBinDirs) == 0 {
		errs = append(errs, errors.New("-cni-bin-dir is required"))
	}
	if o.AttachConcurrency < 1 {
		errs = append(errs, fmt.Errorf("-attach-concurrency: %d is not positive", o.AttachConcurrency))
	}
	if o.MaxPluginProcs < o.AttachConcurrency {
		errs = append(errs, fmt.Errorf("-max-plugin-processes: %d is below -attach-concurrency (%d): one pod could not attach its networks at once", o.MaxPluginProcs, o.AttachConcurrency))
	}
	if o.AttachTimeout <= 0 || o.ReconcileInterval <= 0 || o.ResyncInterval <= 0 || o.ShutdownGrace <= 0 {
		errs = append(errs, errors.New("-attach-timeout, -reconcile-interval, -resync-interval and -shutdown-grace must be positive"))
	}
	if (o.Kubeconfig == "") != (o.NodeName == "") {
		errs = append(errs, errors.New("annotation mode needs both -kubeconfig and -node-name"))
	}
	return errors.Join(errs...)
}
