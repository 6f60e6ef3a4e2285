package localcluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// writeConfigs writes every file the components read: the scheduler's
// configuration and, per node, containerd's and kubelet's configurations,
// the primary network and the node's extra networks.
func (l layout) writeConfigs() error {
	if l.usesSchedulerConfig() {
		b, err := l.schedulerConfig()
		if err != nil {
			return err
		}
		if err := os.WriteFile(l.schedulerConfigFile(), b, 0o644); err != nil {
			return fmt.Errorf("scheduler config: %w", err)
		}
	}
	pause, err := l.pauseImage()
	if err != nil {
		return err
	}
	for _, n := range l.nodes {
		if err := l.writeNodeConfigs(n, pause); err != nil {
			return fmt.Errorf("%s: %w", n.Name, err)
		}
	}
	return nil
}

func (l layout) writeNodeConfigs(n Node, pauseImage string) error {
	for _, d := range []string{n.Dir, n.RunDir, n.CNIConfDir(), n.NetworksDir(), n.ManifestsDir(), n.KubeletDir(),
		filepath.Join(n.Dir, "pod-logs"), filepath.Join(n.Dir, "volume-plugins")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	var ctrd bytes.Buffer
	if err := containerdConfig.Execute(&ctrd, map[string]any{"Node": n, "PauseImage": pauseImage,
		"Runc": l.opts.Runc, "CNIBinDir": l.cniBinDir()}); err != nil {
		return fmt.Errorf("containerd config: %w", err)
	}
	kubelet, err := yaml.Marshal(l.kubeletConfiguration(n))
	if err != nil {
		return fmt.Errorf("kubelet config: %w", err)
	}
	primary, err := primaryNetwork(n)
	if err != nil {
		return err
	}
	for path, b := range map[string][]byte{
		n.containerdConfig(): ctrd.Bytes(),
		n.kubeletConfig():    kubelet,
		filepath.Join(n.CNIConfDir(), "10-primary.conflist"): primary,
	} {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return err
		}
	}
	if src := l.opts.NodeNetworks[n.Name]; src != "" {
		if err := copyConflists(src, n.NetworksDir(), n); err != nil {
			return fmt.Errorf("networks: %w", err)
		}
	}
	return nil
}

// containerdConfig is a template because containerd's CRI plugin
// configuration types are internal to containerd; TOML strings are quoted
// with ' (literal strings), so paths need no escaping.
var containerdConfig = template.Must(template.New("containerd").Parse(`version = 3
root = '{{.Node.Dir}}/containerd/root'
state = '{{.Node.Dir}}/containerd/state'
temp = '{{.Node.Dir}}/containerd/tmp'
# NRI would listen on one host-wide socket; nothing here uses it.
disabled_plugins = ['io.containerd.nri.v1.nri']

[grpc]
  address = '{{.Node.ContainerdSocket}}'

[ttrpc]
  address = '{{.Node.ContainerdSocket}}.ttrpc'

[plugins]
  [plugins.'io.containerd.internal.v1.opt']
    path = '{{.Node.Dir}}/containerd/opt'

  [plugins.'io.containerd.shim.v1.manager']
    socket_dir = '{{.Node.RunDir}}/s'

  [plugins.'io.containerd.cri.v1.images']
    snapshotter = 'overlayfs'
    [plugins.'io.containerd.cri.v1.images'.pinned_images]
      sandbox = '{{.PauseImage}}'

  [plugins.'io.containerd.cri.v1.runtime']
    # This machine lacks CAP_SYS_RESOURCE: the sandbox's -998 would be refused.
    restrict_oom_score_adj = true
    # Keeps each node's pod network namespaces in its own state dir.
    netns_mounts_under_state_dir = true
    cdi_spec_dirs = []

    [plugins.'io.containerd.cri.v1.runtime'.containerd]
      default_runtime_name = 'runc'
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
        runtime_type = 'io.containerd.runc.v2'
        [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
          BinaryName = '{{.Runc}}'
          Root = '{{.Node.RunDir}}/runc'
          SystemdCgroup = false

    [plugins.'io.containerd.cri.v1.runtime'.cni]
      bin_dirs = ['{{.CNIBinDir}}']
      conf_dir = '{{.Node.CNIConfDir}}'
      max_conf_num = 1

  [plugins.'io.containerd.grpc.v1.cri']
    stream_server_address = '127.0.0.1'
    stream_server_port = '0'
`))

// kubeletConfiguration is the node's kubelet configuration.
func (l layout) kubeletConfiguration(n Node) *kubeletv1beta1.KubeletConfiguration {
	cfg := &kubeletv1beta1.KubeletConfiguration{
		TypeMeta:           metav1.TypeMeta{APIVersion: kubeletv1beta1.SchemeGroupVersion.String(), Kind: "KubeletConfiguration"},
		Port:               int32(n.KubeletPort),
		HealthzPort:        ptr.To(int32(n.HealthzPort)),
		HealthzBindAddress: "127.0.0.1",
		Authentication: kubeletv1beta1.KubeletAuthentication{
			Anonymous: kubeletv1beta1.KubeletAnonymousAuthentication{Enabled: ptr.To(false)},
			Webhook:   kubeletv1beta1.KubeletWebhookAuthentication{Enabled: ptr.To(true)},
			X509:      kubeletv1beta1.KubeletX509Authentication{ClientCAFile: l.certPath("ca")},
		},
		Authorization:            kubeletv1beta1.KubeletAuthorization{Mode: kubeletv1beta1.KubeletAuthorizationModeWebhook},
		ContainerRuntimeEndpoint: n.CRIEndpoint,
		CgroupDriver:             "cgroupfs",
		// Per node: with a shared root each kubelet's orphan cleanup
		// removes the other's pod cgroups.
		CgroupRoot:   n.CgroupRoot,
		FailCgroupV1: ptr.To(false),
		FailSwapOn:   ptr.To(false),
		// Per node: the shared default is garbage-collected by the other
		// kubelet.
		PodLogsDir:      filepath.Join(n.Dir, "pod-logs"),
		StaticPodPath:   n.ManifestsDir(),
		VolumePluginDir: filepath.Join(n.Dir, "volume-plugins"),
		// The cluster leaves the host's iptables alone.
		MakeIPTablesUtilChains: ptr.To(false),
		ResolverConfig:         ptr.To(""),
		EvictionHard: map[string]string{
			"memory.available": "100Mi", "nodefs.available": "1%", "imagefs.available": "1%", "nodefs.inodesFree": "1%",
		},
		ImageGCHighThresholdPercent: ptr.To(int32(100)),
		ImageGCLowThresholdPercent:  ptr.To(int32(99)),
		NodeStatusReportFrequency:   metav1.Duration{Duration: 10 * time.Second},
	}
	if n.PatchedKubelet { // the stock kubelet refuses a gate it does not know
		cfg.FeatureGates = map[string]bool{"PodNetworks": n.PodNetworksGate}
	}
	return cfg
}

// primaryNetwork is the node's pod network: a bridge per node with its own
// subnet; host-local keeps its leases in the node's state dir.
func primaryNetwork(n Node) ([]byte, error) {
	return json.MarshalIndent(map[string]any{
		"cniVersion": "1.1.0",
		"name":       "primary-" + n.Name,
		"plugins": []any{map[string]any{
			"type":        "bridge",
			"bridge":      n.Bridge,
			"isGateway":   true,
			"ipMasq":      false,
			"hairpinMode": true,
			"ipam": map[string]any{
				"type":    "host-local",
				"ranges":  [][]map[string]string{{{"subnet": n.Subnet}}},
				"routes":  []map[string]string{{"dst": "0.0.0.0/0"}},
				"dataDir": filepath.Join(n.Dir, "cni", "ipam"),
			},
		}},
	}, "", "  ")
}

// copyConflists copies the files of src into dst, with the node's
// placeholders replaced (see Options.NodeNetworks).
func copyConflists(src, dst string, n Node) error {
	r := strings.NewReplacer("{{NODE}}", n.Name, "{{NODE_INDEX}}", strconv.Itoa(n.Index), "{{NODE_DIR}}", n.Dir)
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), []byte(r.Replace(string(b))), 0o644); err != nil {
			return err
		}
	}
	return nil
}
