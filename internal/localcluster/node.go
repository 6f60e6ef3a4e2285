package localcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"text/template"
	"time"
)

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

var kubeletConfig = template.Must(template.New("kubelet").Parse(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
port: {{.Node.KubeletPort}}
healthzPort: {{.Node.HealthzPort}}
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: '{{.CA}}'
authorization:
  mode: Webhook
containerRuntimeEndpoint: '{{.CRIEndpoint}}'
cgroupDriver: cgroupfs
# Per node: with a shared root each kubelet's orphan cleanup removes the
# other's pod cgroups.
cgroupRoot: '{{.Node.CgroupRoot}}'
failCgroupV1: false
failSwapOn: false
# Per node: the shared default is garbage-collected by the other kubelet.
podLogsDir: '{{.Node.Dir}}/pod-logs'
volumePluginDir: '{{.Node.Dir}}/volume-plugins'
# The cluster leaves the host's iptables alone.
makeIPTablesUtilChains: false
resolvConf: ''
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
nodeStatusReportFrequency: 10s
{{- if .Patched}}
featureGates:
  PodNetworks: {{.PodNetworksGate}}
{{- end}}
`))

func (o *Options) criEndpoint(n Node) string {
	if o.NodeCRIEndpoint != nil {
		return o.NodeCRIEndpoint(n, n.ContainerdSocket())
	}
	if o.CRIProxy {
		return "unix://" + n.ProxySocket()
	}
	return "unix://" + n.ContainerdSocket()
}

func (o *Options) proxyDaemon(n Node) daemon {
	return daemon{name: n.Name + "-cri-proxy", path: o.bin("cri-proxy"), args: []string{
		"-listen=" + n.ProxySocket(),
		"-upstream=" + n.ContainerdSocket(),
		"-networks-dir=" + n.NetworksDir(),
		// The primary network is containerd's: refuse extra networks that
		// would share its name or lease dir.
		"-runtime-cni-conf-dir=" + n.CNIConfDir(),
		"-cni-bin-dir=" + o.cniBinDir(),
		"-state-dir=" + filepath.Join(n.Dir, "cri-proxy"),
		fmt.Sprintf("-metrics-address=127.0.0.1:%d", n.ProxyPort),
		"-kubeconfig=" + o.kubeconfigFor(n.Name+"-cri-proxy"),
		"-node-name=" + n.Name,
		fmt.Sprintf("-node-annotation=%t", o.ProxyNodeAnnotation),
		"-default-network-name=primary",
		"-resync-interval=2s",
		// Test clusters come and go: reconcile often, so what a fault
		// left is cleaned within seconds rather than a minute.
		"-reconcile-interval=10s",
		"-v=2",
	}}
}

func (o *Options) proxyHealthy(n Node) func(context.Context) error {
	return func(ctx context.Context) error {
		return httpOK(ctx, httpClient, fmt.Sprintf("http://127.0.0.1:%d/healthz", n.ProxyPort))
	}
}

// prepareNode writes the node's configuration and directories.
func (o *Options) prepareNode(n Node) error {
	for _, d := range []string{n.Dir, n.RunDir, n.CNIConfDir(), n.NetworksDir(), n.KubeletDir(),
		filepath.Join(n.Dir, "pod-logs"), filepath.Join(n.Dir, "volume-plugins")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	pause, err := o.PauseImage()
	if err != nil {
		return err
	}
	data := map[string]any{"Node": n, "PauseImage": pause, "Runc": o.Runc, "CNIBinDir": o.cniBinDir(),
		"CA": o.certPath("ca"), "CRIEndpoint": o.criEndpoint(n), "Patched": o.Patched, "PodNetworksGate": o.PodNetworksGate}
	for file, t := range map[string]*template.Template{"containerd.toml": containerdConfig, "kubelet.yaml": kubeletConfig} {
		var b bytes.Buffer
		if err := t.Execute(&b, data); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(n.Dir, file), b.Bytes(), 0o644); err != nil {
			return err
		}
	}
	conf, err := primaryNetwork(n)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(n.CNIConfDir(), "10-primary.conflist"), conf, 0o644); err != nil {
		return err
	}
	if src := o.NodeNetworks[n.Name]; src != "" {
		if err := copyConflists(src, n.NetworksDir(), n); err != nil {
			return fmt.Errorf("networks of %s: %w", n.Name, err)
		}
	}
	return createCgroupRoot(n.CgroupRoot)
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

func (o *Options) containerdDaemon(n Node) daemon {
	return daemon{name: n.Name + "-containerd", path: o.bin("containerd"),
		args: []string{"--config", filepath.Join(n.Dir, "containerd.toml"), "--log-level", "info"}}
}

func (o *Options) kubeletDaemon(n Node) daemon {
	return daemon{name: n.Name + "-kubelet", path: o.kubeBin("kubelet"), args: []string{
		"--config=" + filepath.Join(n.Dir, "kubelet.yaml"),
		"--kubeconfig=" + o.kubeconfigFor(n.Name+"-kubelet"),
		"--hostname-override=" + n.Name,
		"--root-dir=" + n.KubeletDir(),
		// The default is /var/lib/kubelet/pki for every kubelet on the host.
		"--cert-dir=" + filepath.Join(n.KubeletDir(), "pki"),
		"--v=1",
	}}
}

// containerdReady checks the node's containerd answers on its socket.
func (o *Options) containerdReady(n Node) func(context.Context) error {
	return func(ctx context.Context) error {
		if _, err := os.Stat(n.ContainerdSocket()); err != nil {
			return err
		}
		return o.ctr(ctx, n, "version")
	}
}

func (o *Options) ctr(ctx context.Context, n Node, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, o.bin("ctr"), append([]string{"--address", n.ContainerdSocket()}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (o *Options) kubeletHealthy(n Node) func(context.Context) error {
	return func(ctx context.Context) error {
		return httpOK(ctx, httpClient, fmt.Sprintf("http://127.0.0.1:%d/healthz", n.HealthzPort))
	}
}
