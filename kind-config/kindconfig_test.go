package kindconfig

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/version"
	"github.com/coreos/go-systemd/v22/unit"
	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/klog/v2"
	schedv1 "k8s.io/kube-scheduler/config/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	schedoptions "k8s.io/kubernetes/cmd/kube-scheduler/app/options"
	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	kubeadmscheme "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/scheme"
	kubeadmapiv1 "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm/v1beta4"
	"k8s.io/kubernetes/cmd/kubeadm/app/componentconfigs"
	certsphase "k8s.io/kubernetes/cmd/kubeadm/app/phases/certs"
	"k8s.io/kubernetes/cmd/kubeadm/app/phases/controlplane"
	kubeconfigphase "k8s.io/kubernetes/cmd/kubeadm/app/phases/kubeconfig"
	kubeletphase "k8s.io/kubernetes/cmd/kubeadm/app/phases/kubelet"
	configutil "k8s.io/kubernetes/cmd/kubeadm/app/util/config"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/config/strict"
	staticpodutil "k8s.io/kubernetes/cmd/kubeadm/app/util/staticpod"
	schedvalidation "k8s.io/kubernetes/pkg/scheduler/apis/config/validation"
	"sigs.k8s.io/kind/pkg/apis/config/defaults"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"

	"sigs.k8s.io/pod-networks/cri-proxy/pkg/catalog"
	"sigs.k8s.io/pod-networks/scheduler-plugin/pkg/nodenetworks"
)

// nodeAddress stands for a node's address on kind's docker network.
const nodeAddress = "172.18.0.2"

// TestVersions checks hack/versions.env against the kind module: the kind
// release is the one this module requires (whose config handling the other
// tests read), and the base node image is the one that release names, of
// the Kubernetes minor our patched binaries have.
func TestVersions(t *testing.T) {
	v := versions(t)
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Version}}", "sigs.k8s.io/kind").Output()
	if err != nil {
		t.Fatalf("go list -m sigs.k8s.io/kind: %v", err)
	}
	if got := strings.TrimSpace(string(out)); got != v["KIND_VERSION"] {
		t.Errorf("go.mod requires sigs.k8s.io/kind %s, hack/versions.env KIND_VERSION=%s", got, v["KIND_VERSION"])
	}
	if v["KIND_NODE_IMAGE"] != defaults.Image {
		t.Errorf("KIND_NODE_IMAGE=%s, want the node image of kind %s: %s", v["KIND_NODE_IMAGE"], v["KIND_VERSION"], defaults.Image)
	}
	if got, want := minor(t, nodeImageKubeVersion(t)), minor(t, v["KUBE_VERSION"]); got != want {
		t.Errorf("KIND_NODE_IMAGE is Kubernetes %s, KUBE_VERSION %s: minors differ", got, want)
	}
	if v["KIND_IMAGE"] == "" {
		t.Error("hack/versions.env: KIND_IMAGE is empty")
	}
}

// nodeImageKubeVersion is the Kubernetes version of KIND_NODE_IMAGE, its
// tag: what kind reads from the node (/kind/version) to render kubeadm's
// configuration, and the version of its kubeadm.
func nodeImageKubeVersion(t *testing.T) string {
	t.Helper()
	ref, _, _ := strings.Cut(versions(t)["KIND_NODE_IMAGE"], "@")
	_, tag, ok := strings.Cut(ref, ":")
	if !ok || !strings.HasPrefix(tag, "v1.") {
		t.Fatalf("KIND_NODE_IMAGE %q has no v1.x tag", ref)
	}
	return tag
}

func minor(t *testing.T, v string) string {
	t.Helper()
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		t.Fatalf("%q is not a version", v)
	}
	return parts[0] + "." + parts[1]
}

// TestCluster checks the kind cluster itself: one control plane and two
// workers, each worker mounting a networks dir of its own at the CRI
// proxy's -networks-dir, and no cluster-wide feature gate.
func TestCluster(t *testing.T) {
	c := loadCluster(t)
	if c.Kind != "Cluster" || c.APIVersion != "kind.x-k8s.io/v1alpha4" {
		t.Errorf("cluster.yaml is %s %s, want kind.x-k8s.io/v1alpha4 Cluster", c.APIVersion, c.Kind)
	}
	if c.Name == "" {
		t.Error("cluster.yaml: no name")
	}
	if _, ok := c.FeatureGates["PodNetworks"]; ok {
		t.Error("cluster.yaml: featureGates.PodNetworks: kind passes it to the stock kube-proxy, which refuses gates it does not know")
	}
	if len(c.KubeadmConfigPatchesJSON6902) > 0 {
		t.Error("cluster.yaml: kubeadmConfigPatchesJSON6902: the tests check merge patches only")
	}
	networksDir := proxyFlag(t, "networks-dir")
	var workers []v1alpha4.Node
	controlPlanes := 0
	for _, n := range c.Nodes {
		if len(n.KubeadmConfigPatchesJSON6902) > 0 {
			t.Error("cluster.yaml: a node's kubeadmConfigPatchesJSON6902: the tests check merge patches only")
		}
		switch n.Role {
		case v1alpha4.ControlPlaneRole:
			controlPlanes++
			if len(n.ExtraMounts) > 0 {
				t.Errorf("control plane: extraMounts %v, want none (no networks there)", n.ExtraMounts)
			}
		case v1alpha4.WorkerRole:
			workers = append(workers, n)
		default:
			t.Errorf("cluster.yaml: node role %q", n.Role)
		}
	}
	if controlPlanes != 1 || len(workers) != 2 {
		t.Fatalf("cluster.yaml: %d control planes and %d workers, want 1 and 2", controlPlanes, len(workers))
	}
	seen := map[string]bool{}
	for i, w := range workers {
		if len(w.ExtraMounts) != 1 {
			t.Errorf("worker %d: %d extraMounts, want 1 (its networks)", i+1, len(w.ExtraMounts))
			continue
		}
		m := w.ExtraMounts[0]
		if m.ContainerPath != networksDir || !m.Readonly {
			t.Errorf("worker %d: mounts %s at %s (read-only %t), want read-only at the proxy's -networks-dir %s", i+1, m.HostPath, m.ContainerPath, m.Readonly, networksDir)
		}
		if filepath.IsAbs(m.HostPath) || seen[filepath.Clean(m.HostPath)] {
			t.Errorf("worker %d: hostPath %s: want a path relative to the repository root, its own", i+1, m.HostPath)
		}
		seen[filepath.Clean(m.HostPath)] = true
		if fi, err := os.Stat(filepath.Join(repoRoot, m.HostPath)); err != nil || !fi.IsDir() {
			t.Errorf("worker %d: hostPath %s is not a directory of the repository: %v", i+1, m.HostPath, err)
		}
	}
}

// TestKubeadmPatchesStrict decodes every kubeadmConfigPatches document with
// kubeadm's own strict decoding and schemes (kubeadm's, kubelet's and
// kube-proxy's), as kubeadm checks its configuration: an unknown or
// misspelled field fails.
func TestKubeadmPatchesStrict(t *testing.T) {
	c := loadCluster(t)
	patches := slices.Clone(c.KubeadmConfigPatches)
	for _, n := range c.Nodes {
		patches = append(patches, n.KubeadmConfigPatches...)
	}
	if len(patches) == 0 {
		t.Fatal("cluster.yaml: no kubeadmConfigPatches")
	}
	for _, p := range patches {
		for _, doc := range splitYAML(t, p) {
			if err := verifyStrict(t, doc); err != nil {
				t.Error(err)
			}
		}
	}
	// The check has teeth: a misspelled field fails it.
	bad := []byte(`{"apiVersion":"kubeadm.k8s.io/v1beta4","kind":"ClusterConfiguration","apiServer":{"extraArg":[]}}`)
	if verifyStrict(t, bad) == nil {
		t.Error("strict decoding accepts apiServer.extraArg")
	}
}

func verifyStrict(t *testing.T, doc []byte) error {
	t.Helper()
	tm := typeMeta(t, doc)
	gvk := schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind)
	return strict.VerifyUnmarshalStrict([]*runtime.Scheme{kubeadmscheme.Scheme, componentconfigs.Scheme}, gvk, doc)
}

// nodeConfig writes kind's kubeadm configuration of a node, patched by
// cluster.yaml as kind patches it and checked strictly document by
// document; it returns the file's path and text.
func nodeConfig(t *testing.T, c *v1alpha4.Cluster, node string, role v1alpha4.NodeRole, index int) (string, string) {
	t.Helper()
	patches := slices.Clone(c.KubeadmConfigPatches)
	patches = append(patches, c.Nodes[index].KubeadmConfigPatches...)
	text := kindPatch(t, kindConfig(t, c, node, role == v1alpha4.ControlPlaneRole, nodeImageKubeVersion(t), nodeAddress), patches)
	for _, doc := range splitYAML(t, text) {
		if err := verifyStrict(t, doc); err != nil {
			t.Errorf("%s: %v", node, err)
		}
	}
	file := filepath.Join(t.TempDir(), "kubeadm.conf")
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return file, text
}

// nodeIndex returns the index in c.Nodes of the i-th node of role.
func nodeIndex(t *testing.T, c *v1alpha4.Cluster, role v1alpha4.NodeRole, i int) int {
	t.Helper()
	for j, n := range c.Nodes {
		if n.Role == role {
			if i == 0 {
				return j
			}
			i--
		}
	}
	t.Fatalf("cluster.yaml: no %s node %d", role, i)
	return 0
}

// initConfig loads the control plane's kubeadm configuration as
// `kubeadm init --config /kind/kubeadm.conf` does (defaulted, validated).
func initConfig(t *testing.T) (*kubeadmapi.InitConfiguration, string) {
	t.Helper()
	c := loadCluster(t)
	file, text := nodeConfig(t, c, c.Name+"-control-plane", v1alpha4.ControlPlaneRole, nodeIndex(t, c, v1alpha4.ControlPlaneRole, 0))
	cfg, err := configutil.LoadOrDefaultInitConfiguration(file, &kubeadmapiv1.InitConfiguration{}, &kubeadmapiv1.ClusterConfiguration{},
		configutil.LoadOrDefaultConfigurationOptions{SkipCRIDetect: true})
	if err != nil {
		t.Fatalf("kubeadm init configuration: %v", err)
	}
	return cfg, text
}

// proxySocket is the CRI endpoint of the proxy's -listen.
func proxySocket(t *testing.T) string {
	t.Helper()
	return "unix://" + proxyFlag(t, "listen")
}

// TestKubeadmInit runs the control plane's configuration through kubeadm's
// own code: the static pods, as kubeadm generates and patches them, run the
// patched binaries with the gate on and the scheduler configuration, and
// kubelet's configuration, as kubeadm writes it, points at the CRI proxy.
func TestKubeadmInit(t *testing.T) {
	cfg, text := initConfig(t)
	if cfg.NodeRegistration.CRISocket != proxySocket(t) {
		t.Errorf("InitConfiguration criSocket %s, want the proxy's %s", cfg.NodeRegistration.CRISocket, proxySocket(t))
	}
	if cfg.Patches == nil || cfg.Patches.Directory == "" {
		t.Fatal("InitConfiguration: no patches directory")
	}
	patchesDir := nodeDir(t, cfg.Patches.Directory)
	binaries := imageBinaries(t)
	specs := controlplane.GetStaticPodSpecs(&cfg.ClusterConfiguration, &cfg.LocalAPIEndpoint, nil)
	want := map[string]string{
		"kube-apiserver":          "/usr/local/pod-networks/bin/kube-apiserver",
		"kube-controller-manager": "/usr/local/pod-networks/bin/kube-controller-manager",
		"kube-scheduler":          "/usr/local/pod-networks/bin/pod-networks-scheduler",
	}
	patched := map[string]*v1.Pod{}
	for component, binary := range want {
		spec := specs[component]
		if len(spec.Spec.Containers) != 1 || len(spec.Spec.Containers[0].Command) == 0 || spec.Spec.Containers[0].Command[0] != component {
			t.Fatalf("%s: kubeadm's static pod does not run %q first: the patch's test op would fail", component, component)
		}
		p, err := staticpodutil.PatchStaticPod(spec.DeepCopy(), patchesDir, io.Discard)
		if err != nil {
			t.Fatalf("%s: kubeadm patches: %v", component, err)
		}
		patched[component] = p
		cmd := p.Spec.Containers[0].Command
		if cmd[0] != binary {
			t.Errorf("%s: runs %s, want %s", component, cmd[0], binary)
		}
		if _, ok := binaries[cmd[0]]; !ok {
			t.Errorf("%s: runs %s, which the node image does not add", component, cmd[0])
		}
		if !slices.Contains(cmd, "--feature-gates=PodNetworks=true") {
			t.Errorf("%s: command %v lacks --feature-gates=PodNetworks=true", component, cmd)
		}
		checkMounted(t, p, path.Dir(cmd[0]), v1.HostPathDirectory)
		// The patches change command[0] and nothing else.
		back := p.DeepCopy()
		back.Spec.Containers[0].Command[0] = component
		if a, b := mustJSON(t, back), mustJSON(t, &spec); !bytes.Equal(a, b) {
			t.Errorf("%s: the patches change more than command[0]:\n%s\nwant\n%s", component, a, b)
		}
	}
	t.Run("scheduler configuration", func(t *testing.T) {
		checkSchedulerConfig(t, patched["kube-scheduler"])
	})
	t.Run("kubelet configuration", func(t *testing.T) {
		checkKubeletConfig(t, &cfg.ClusterConfiguration, cfg.NodeRegistration.CRISocket, patchesDir)
		// A flag would win over the configuration file.
		dir := t.TempDir()
		if err := kubeletphase.WriteKubeletDynamicEnvFile(&cfg.ClusterConfiguration, &cfg.NodeRegistration, false, dir); err != nil {
			t.Fatal(err)
		}
		if env := readFile(t, filepath.Join(dir, "kubeadm-flags.env")); bytes.Contains(env, []byte("container-runtime-endpoint")) {
			t.Errorf("kubeadm-flags.env sets the runtime endpoint: %s", env)
		}
	})
	t.Run("kube-proxy configuration", func(t *testing.T) {
		for _, doc := range splitYAML(t, text) {
			var kp struct {
				Kind         string          `json:"kind"`
				FeatureGates map[string]bool `json:"featureGates"`
			}
			if err := json.Unmarshal(doc, &kp); err != nil {
				t.Fatal(err)
			}
			if _, ok := kp.FeatureGates["PodNetworks"]; kp.Kind == "KubeProxyConfiguration" && ok {
				t.Error("KubeProxyConfiguration sets PodNetworks: the stock kube-proxy refuses it")
			}
		}
	})
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// checkMounted fails unless pod's container mounts the node's path p,
// read-only, from a hostPath volume of the same path and type.
func checkMounted(t *testing.T, pod *v1.Pod, p string, typ v1.HostPathType) {
	t.Helper()
	for _, m := range pod.Spec.Containers[0].VolumeMounts {
		if m.MountPath != p {
			continue
		}
		for _, vol := range pod.Spec.Volumes {
			if vol.Name == m.Name && vol.HostPath != nil && vol.HostPath.Path == p && m.ReadOnly &&
				vol.HostPath.Type != nil && *vol.HostPath.Type == typ {
				return
			}
		}
		t.Errorf("%s: mounts %s, but not read-only from hostPath %s (%s)", pod.Name, p, p, typ)
		return
	}
	t.Errorf("%s: does not mount %s", pod.Name, p)
}

// checkSchedulerConfig checks the scheduler's --config: a file the image
// adds, mounted read-only, that kube-scheduler's own loader and validation
// accept, with NodeNetworks in the default profile and a kubeconfig the pod
// mounts.
func checkSchedulerConfig(t *testing.T, pod *v1.Pod) {
	var file string
	for _, a := range pod.Spec.Containers[0].Command {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			file = v
		}
	}
	if file == "" {
		t.Fatal("kube-scheduler: no --config")
	}
	checkMounted(t, pod, file, v1.HostPathFile)
	raw := readNode(t, file)
	var ext schedv1.KubeSchedulerConfiguration
	if err := yaml.UnmarshalStrict(raw, &ext); err != nil {
		t.Errorf("%s: %v", file, err)
	}
	local := filepath.Join(t.TempDir(), "scheduler-config.yaml")
	if err := os.WriteFile(local, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := schedoptions.LoadConfigFromFile(klog.Background(), local)
	if err != nil {
		t.Fatalf("%s: kube-scheduler's loader: %v", file, err)
	}
	if err := schedvalidation.ValidateKubeSchedulerConfiguration(cfg); err != nil {
		t.Errorf("%s: kube-scheduler's validation: %v", file, err)
	}
	kubeconfig := cfg.ClientConnection.Kubeconfig
	mounted := false
	for _, m := range pod.Spec.Containers[0].VolumeMounts {
		mounted = mounted || m.MountPath == kubeconfig
	}
	if !mounted {
		t.Errorf("%s: kubeconfig %s is not mounted in kubeadm's scheduler pod", file, kubeconfig)
	}
	enabled := false
	for _, p := range cfg.Profiles {
		if p.SchedulerName != v1.DefaultSchedulerName {
			continue
		}
		for _, pl := range p.Plugins.MultiPoint.Enabled {
			enabled = enabled || pl.Name == nodenetworks.Name
		}
	}
	if !enabled {
		t.Errorf("%s: %s is not enabled in the %s profile", file, nodenetworks.Name, v1.DefaultSchedulerName)
	}
}

// checkKubeletConfig writes kubelet's configuration as kubeadm's
// kubelet-start phase does (init and join alike: the cluster's
// KubeletConfiguration, then the node's criSocket as its instance
// configuration) and checks what kubelet reads.
func checkKubeletConfig(t *testing.T, cluster *kubeadmapi.ClusterConfiguration, criSocket, patchesDir string) {
	t.Helper()
	dir := t.TempDir()
	if err := kubeletphase.WriteInstanceConfigToDisk(&kubeletv1beta1.KubeletConfiguration{ContainerRuntimeEndpoint: criSocket}, dir); err != nil {
		t.Fatal(err)
	}
	if err := kubeletphase.WriteConfigToDisk(cluster, dir, patchesDir, io.Discard); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var kc kubeletv1beta1.KubeletConfiguration
	if err := yaml.UnmarshalStrict(b, &kc); err != nil {
		t.Fatalf("kubelet's config.yaml: %v", err)
	}
	if kc.ContainerRuntimeEndpoint != proxySocket(t) {
		t.Errorf("kubelet's containerRuntimeEndpoint %s, want the proxy's %s", kc.ContainerRuntimeEndpoint, proxySocket(t))
	}
	if !kc.FeatureGates["PodNetworks"] {
		t.Errorf("kubelet's featureGates %v: PodNetworks is not on", kc.FeatureGates)
	}
}

// TestKubeadmJoin loads each worker's configuration as `kubeadm join`
// does and checks the kubelet configuration it writes from the control
// plane's.
func TestKubeadmJoin(t *testing.T) {
	c := loadCluster(t)
	initCfg, _ := initConfig(t)
	for i, name := range []string{c.Name + "-worker", c.Name + "-worker2"} {
		t.Run(name, func(t *testing.T) {
			file, _ := nodeConfig(t, c, name, v1alpha4.WorkerRole, nodeIndex(t, c, v1alpha4.WorkerRole, i))
			cfg, err := configutil.LoadOrDefaultJoinConfiguration(file, &kubeadmapiv1.JoinConfiguration{},
				configutil.LoadOrDefaultConfigurationOptions{SkipCRIDetect: true})
			if err != nil {
				t.Fatalf("kubeadm join configuration: %v", err)
			}
			if cfg.NodeRegistration.CRISocket != proxySocket(t) {
				t.Errorf("JoinConfiguration criSocket %s, want the proxy's %s", cfg.NodeRegistration.CRISocket, proxySocket(t))
			}
			if cfg.Patches == nil || cfg.Patches.Directory != initCfg.Patches.Directory {
				t.Errorf("JoinConfiguration patches %+v, want those of InitConfiguration (%s)", cfg.Patches, initCfg.Patches.Directory)
			}
			checkKubeletConfig(t, &initCfg.ClusterConfiguration, cfg.NodeRegistration.CRISocket, nodeDir(t, initCfg.Patches.Directory))
		})
	}
}

// TestUnits checks the systemd units: the proxy is started (its socket
// answering CRI Status) before kubelet, which wants it, and it serves the
// socket kubelet uses, in front of kind's containerd.
func TestUnits(t *testing.T) {
	proxy := unitOptions(t, "/etc/systemd/system/cri-proxy.service")
	has := func(opts []*unit.UnitOption, section, key, value string) bool {
		for _, v := range unitValues(opts, section, key) {
			if slices.Contains(strings.Fields(v), value) {
				return true
			}
		}
		return false
	}
	for _, w := range []struct{ section, key, value string }{
		{"Unit", "Before", "kubelet.service"},
		{"Unit", "After", "containerd.service"},
		{"Unit", "Wants", "containerd.service"},
		{"Install", "WantedBy", "multi-user.target"},
	} {
		if !has(proxy, w.section, w.key, w.value) {
			t.Errorf("cri-proxy.service: no [%s] %s=%s", w.section, w.key, w.value)
		}
	}
	bin, _ := proxyCommand(t)
	if _, ok := imageBinaries(t)[bin]; !ok {
		t.Errorf("cri-proxy.service runs %s, which the node image does not add", bin)
	}
	// The unit is started once the socket answers a CRI call, not before.
	post := strings.Join(unitValues(proxy, "Service", "ExecStartPost"), "\n")
	if !strings.Contains(post, "--runtime-endpoint="+proxySocket(t)+" ") || !strings.Contains(post, " info") {
		t.Errorf("cri-proxy.service: ExecStartPost %q does not wait for a CRI Status call (crictl info) on %s", post, proxySocket(t))
	}
	if got, want := "unix://"+proxyFlag(t, "upstream"), kindContainerdSocket(t); got != want {
		t.Errorf("cri-proxy.service: -upstream %s, want kind's containerd %s", got, want)
	}
	if got := proxyFlag(t, "cni-bin-dir"); got != nodeCNIBinDir {
		t.Errorf("cri-proxy.service: -cni-bin-dir %s, want %s, where the image puts the plugins", got, nodeCNIBinDir)
	}
	// containerd's default CNI conf dir (kind sets none), where kindnet writes
	// the primary network the proxy must not collide with.
	if got := proxyFlag(t, "runtime-cni-conf-dir"); got != "/etc/cni/net.d" {
		t.Errorf("cri-proxy.service: -runtime-cni-conf-dir %s, want /etc/cni/net.d", got)
	}
	env := unitValues(proxy, "Service", "EnvironmentFile")
	if len(env) != 1 || !strings.Contains(string(readRepo(t, "kind-config/up.sh")), strings.TrimPrefix(env[0], "-")) {
		t.Errorf("cri-proxy.service: EnvironmentFile %v is not the file kind-config/up.sh writes", env)
	}

	kubelet := unitOptions(t, "/etc/systemd/system/kubelet.service.d/20-cri-proxy.conf")
	for _, key := range []string{"Wants", "After"} {
		if !has(kubelet, "Unit", key, "cri-proxy.service") {
			t.Errorf("kubelet.service.d/20-cri-proxy.conf: no %s=cri-proxy.service", key)
		}
	}
}

// kindContainerdSocket is the socket containerd serves on kind's nodes, as
// kind's own crictl.yaml names it.
func kindContainerdSocket(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(kindModuleDir(t), "images/base/files/etc/crictl.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		RuntimeEndpoint string `json:"runtime-endpoint"`
	}
	if err := yaml.UnmarshalStrict(b, &c); err != nil || c.RuntimeEndpoint == "" {
		t.Fatalf("kind's crictl.yaml: %v (%s)", err, b)
	}
	return c.RuntimeEndpoint
}

// TestNetworks runs the CRI proxy's own catalog over each worker's networks
// dir, beside kindnet's network in the runtime's CNI conf dir, with the
// plugins the image adds: every file is a valid network, available, and
// collides with nothing. The workers' networks differ and no two subnets
// overlap, each other's or the cluster's.
func TestNetworks(t *testing.T) {
	c := loadCluster(t)
	runtimeDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(runtimeDir, "10-kindnet.conflist"), readRepo(t, "kind-config/testdata/10-kindnet.conflist"), 0o644); err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	var subnets []*net.IPNet
	for i := range 2 {
		n := c.Nodes[nodeIndex(t, c, v1alpha4.WorkerRole, i)]
		if len(n.ExtraMounts) != 1 {
			t.Fatalf("worker %d: %d extraMounts, want 1", i+1, len(n.ExtraMounts))
		}
		dir := filepath.Join(repoRoot, n.ExtraMounts[0].HostPath)
		files, err := filepath.Glob(filepath.Join(dir, "*"))
		if err != nil {
			t.Fatal(err)
		}
		nets, errs := catalogOf(t, dir, runtimeDir)
		for _, e := range errs {
			t.Errorf("worker %d: %s", i+1, e)
		}
		if len(nets) != len(files) {
			t.Errorf("worker %d: %d networks of %d files in %s", i+1, len(nets), len(files), dir)
		}
		for _, nw := range nets {
			if !nw.Available {
				t.Errorf("worker %d: network %s not available: %v", i+1, nw.Name, nw.Err)
			}
			got[n.ExtraMounts[0].HostPath] = append(got[n.ExtraMounts[0].HostPath], nw.Name)
			subnets = append(subnets, hostLocalSubnets(t, nw.Bytes)...)
		}
	}
	want := map[string][]string{"kind-config/networks/worker": {"blue", "red"}, "kind-config/networks/worker2": {"blue"}}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("networks %v, want %v (README.md and up.sh say so)", got, want)
	}
	cluster := c.DeepCopy()
	v1alpha4.SetDefaultsCluster(cluster)
	for _, s := range []string{cluster.Networking.PodSubnet, cluster.Networking.ServiceSubnet} {
		_, n, err := net.ParseCIDR(s)
		if err != nil {
			t.Fatal(err)
		}
		subnets = append(subnets, n)
	}
	for i, a := range subnets {
		for _, b := range subnets[i+1:] {
			if a.Contains(b.IP) || b.Contains(a.IP) {
				t.Errorf("subnets %s and %s overlap", a, b)
			}
		}
	}

	// The check has teeth: kindnet's name is refused.
	clash := t.TempDir()
	blue := readRepo(t, "kind-config/networks/worker2/blue.conflist")
	if err := os.WriteFile(filepath.Join(clash, "kindnet.conflist"), bytes.Replace(blue, []byte(`"blue"`), []byte(`"kindnet"`), 1), 0o644); err != nil {
		t.Fatal(err)
	}
	if nets, errs := catalogOf(t, clash, runtimeDir); len(nets) != 0 || len(errs) != 1 {
		t.Errorf("a network named kindnet: catalog %v, errors %v; want it refused", nets, errs)
	}
}

// catalogOf loads dir with the CRI proxy's catalog, as the unit runs it.
func catalogOf(t *testing.T, dir, runtimeDir string) ([]catalog.Network, []string) {
	t.Helper()
	obs := &configErrors{}
	cat, err := catalog.New(catalog.Config{Dir: dir, RuntimeConfDir: runtimeDir, BinDirs: strings.Split(proxyFlag(t, "cni-bin-dir"), ","),
		Exec: imageExec{plugins: cniPlugins(t)}, Observer: obs})
	if err != nil {
		t.Fatal(err)
	}
	cat.Refresh(context.Background())
	return cat.Networks(), obs.errs
}

type configErrors struct {
	mu   sync.Mutex
	errs []string
}

func (o *configErrors) ConfigError(file string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.errs = append(o.errs, fmt.Sprintf("%s: %v", filepath.Base(file), err))
}

// imageExec stands for the node's plugins: those of CNI_PLUGINS, in the
// image's plugin dir, whose STATUS succeeds.
type imageExec struct{ plugins []string }

func (e imageExec) FindInPath(plugin string, paths []string) (string, error) {
	if slices.Contains(paths, nodeCNIBinDir) && slices.Contains(e.plugins, plugin) {
		return path.Join(nodeCNIBinDir, plugin), nil
	}
	return "", fmt.Errorf("plugin %s: not in %v (the image adds %v to %s)", plugin, paths, e.plugins, nodeCNIBinDir)
}

func (imageExec) ExecPlugin(_ context.Context, _ string, _ []byte, environ []string) ([]byte, error) {
	if slices.Contains(environ, "CNI_COMMAND=STATUS") {
		return nil, nil
	}
	return nil, fmt.Errorf("unexpected plugin call %v", environ)
}

func (imageExec) Decode(b []byte) (version.PluginInfo, error) {
	return new(version.PluginDecoder).Decode(b)
}

// hostLocalSubnets returns the subnets of a config list's host-local IPAMs.
func hostLocalSubnets(t *testing.T, conf []byte) []*net.IPNet {
	t.Helper()
	var list struct {
		Plugins []struct {
			IPAM struct {
				Type   string                      `json:"type"`
				Ranges [][]struct{ Subnet string } `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal(conf, &list); err != nil {
		t.Fatal(err)
	}
	var out []*net.IPNet
	for _, p := range list.Plugins {
		for _, r := range p.IPAM.Ranges {
			for _, s := range r {
				_, n, err := net.ParseCIDR(s.Subnet)
				if err != nil {
					t.Fatal(err)
				}
				out = append(out, n)
			}
		}
	}
	return out
}

// TestCredential issues a proxy's credential as kind-config/up.sh does
// (kubeadm kubeconfig user with the control plane's configuration): it names
// the user and group admission/cri-proxy-policy.yaml expects, and the API
// server by the name the nodes reach it at.
func TestCredential(t *testing.T) {
	up := string(readRepo(t, "kind-config/up.sh"))
	prefix, group := shellVar(t, up, "proxy_user_prefix"), shellVar(t, up, "proxy_group")
	for _, want := range []string{
		`kubeadm kubeconfig user --config /kind/kubeadm.conf`,
		`--client-name "${proxy_user_prefix}${node}" --org "${proxy_group}"`,
	} {
		if !strings.Contains(up, want) {
			t.Errorf("up.sh does not run %s", want)
		}
	}
	policy := string(readRepo(t, "admission/cri-proxy-policy.yaml"))
	for _, s := range []string{"'" + prefix + "'", "'" + group + "'"} {
		if !strings.Contains(policy, s) {
			t.Errorf("admission/cri-proxy-policy.yaml does not check %s", s)
		}
	}

	cfg, _ := initConfig(t)
	cfg.CertificatesDir = t.TempDir()
	if err := certsphase.CreateCACertAndKeyFiles(certsphase.KubeadmCertRootCA(), cfg); err != nil {
		t.Fatal(err)
	}
	c := loadCluster(t)
	node := c.Name + "-worker"
	var out bytes.Buffer
	if err := kubeconfigphase.WriteKubeConfigWithClientCert(&out, cfg, prefix+node, []string{group}, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	kc, err := clientcmd.Load(out.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	ctx := kc.Contexts[kc.CurrentContext]
	if ctx == nil || kc.Clusters[ctx.Cluster] == nil || kc.AuthInfos[ctx.AuthInfo] == nil {
		t.Fatalf("kubeconfig without a complete current context: %s", out.String())
	}
	if got, want := kc.Clusters[ctx.Cluster].Server, "https://"+c.Name+"-control-plane:6443"; got != want {
		t.Errorf("server %s, want %s", got, want)
	}
	certs, err := certutil.ParseCertsPEM(kc.AuthInfos[ctx.AuthInfo].ClientCertificateData)
	if err != nil || len(certs) == 0 {
		t.Fatalf("client certificate: %v", err)
	}
	if s := certs[0].Subject; s.CommonName != prefix+node || !slices.Equal(s.Organization, []string{group}) {
		t.Errorf("client certificate CN %q O %v, want %q %v", s.CommonName, s.Organization, prefix+node, []string{group})
	}
}

// shellVar returns the value of a plain NAME=value assignment in a script.
func shellVar(t *testing.T, script, name string) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + name + `=(\S+)$`).FindStringSubmatch(script)
	if m == nil {
		t.Fatalf("no %s=... line", name)
	}
	return m[1]
}

// TestScripts checks that the scripts parse and run in strict mode.
func TestScripts(t *testing.T) {
	for _, s := range []string{"kind-config/up.sh", "hack/kind-image-context.sh"} {
		if out, err := exec.Command("bash", "-n", filepath.Join(repoRoot, s)).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", s, err, out)
		}
		b := string(readRepo(t, s))
		if !strings.Contains(b, "set -o errexit -o nounset -o pipefail") && !strings.Contains(b, `source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"`) {
			t.Errorf("%s: not in strict mode", s)
		}
		if fi, err := os.Stat(filepath.Join(repoRoot, s)); err != nil || fi.Mode()&0o111 == 0 {
			t.Errorf("%s: not executable", s)
		}
	}
}
