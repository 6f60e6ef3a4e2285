package kindconfig

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"text/template"

	"github.com/coreos/go-systemd/v22/unit"
	jsonpatch "github.com/evanphx/json-patch/v5"
	yamlv3 "go.yaml.in/yaml/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	"sigs.k8s.io/yaml"
)

// repoRoot is the repository root, relative to this package's directory
// (where go test runs).
const repoRoot = ".."

// imageFiles maps the configuration files the node image adds (node path)
// to their source in the repository. The unit tests read the node's files
// through it; the kindcontext tests check that the Dockerfile and
// hack/kind-image-context.sh put exactly these there.
var imageFiles = map[string]string{
	"/etc/systemd/system/cri-proxy.service":                               "kind-config/image/cri-proxy.service",
	"/etc/systemd/system/kubelet.service.d/20-cri-proxy.conf":             "kind-config/image/20-cri-proxy.conf",
	"/etc/pod-networks/scheduler-config.yaml":                             "scheduler-plugin/config/scheduler-config.yaml",
	"/etc/pod-networks/kubeadm-patches/kube-apiserver+json.yaml":          "kind-config/image/kubeadm-patches/kube-apiserver+json.yaml",
	"/etc/pod-networks/kubeadm-patches/kube-controller-manager+json.yaml": "kind-config/image/kubeadm-patches/kube-controller-manager+json.yaml",
	"/etc/pod-networks/kubeadm-patches/kube-scheduler+json.yaml":          "kind-config/image/kubeadm-patches/kube-scheduler+json.yaml",
}

// imageBinaries maps the executables the node image adds (node path) to
// their build output under _output, as imageFiles does for files.
func imageBinaries(t *testing.T) map[string]string {
	t.Helper()
	m := map[string]string{
		"/usr/bin/kubelet":                                    "bin/patched/kubelet",
		"/usr/local/pod-networks/bin/kube-apiserver":          "bin/patched/kube-apiserver",
		"/usr/local/pod-networks/bin/kube-controller-manager": "bin/patched/kube-controller-manager",
		"/usr/local/pod-networks/bin/pod-networks-scheduler":  "bin/patched/pod-networks-scheduler",
		"/usr/local/bin/cri-proxy":                            "kind/cri-proxy",
	}
	for _, p := range cniPlugins(t) {
		m[path.Join(nodeCNIBinDir, p)] = path.Join("bin/cni", p)
	}
	return m
}

// nodeCNIBinDir is where the image puts the CNI plugins of CNI_PLUGINS.
const nodeCNIBinDir = "/opt/pod-networks/cni/bin"

// versions returns hack/versions.env.
func versions(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "hack/versions.env"))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			t.Fatalf("hack/versions.env: %q is not KEY=value", l)
		}
		m[k] = v
	}
	return m
}

func cniPlugins(t *testing.T) []string {
	t.Helper()
	v := versions(t)["CNI_PLUGINS"]
	if v == "" {
		t.Fatal("hack/versions.env: CNI_PLUGINS is empty")
	}
	return strings.Split(v, ",")
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readRepo reads a file by its path from the repository root.
func readRepo(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, p))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// readNode reads a file the image adds by its path on the node.
func readNode(t *testing.T, nodePath string) []byte {
	t.Helper()
	src, ok := imageFiles[nodePath]
	if !ok {
		t.Fatalf("%s: the node image adds no such file", nodePath)
	}
	return readRepo(t, src)
}

// nodeDir returns a temporary copy of a directory of the node as the image
// lays it out: the files imageFiles puts directly in dir.
func nodeDir(t *testing.T, dir string) string {
	t.Helper()
	out := t.TempDir()
	n := 0
	for nodePath, src := range imageFiles {
		if path.Dir(nodePath) != path.Clean(dir) {
			continue
		}
		if err := os.WriteFile(filepath.Join(out, path.Base(nodePath)), readRepo(t, src), 0o644); err != nil {
			t.Fatal(err)
		}
		n++
	}
	if n == 0 {
		t.Fatalf("%s: the node image puts no file there", dir)
	}
	return out
}

// loadCluster decodes cluster.yaml as kind does: strictly (unknown fields
// are errors), with kind's v1alpha4 types and its YAML library.
func loadCluster(t *testing.T) *v1alpha4.Cluster {
	t.Helper()
	d := yamlv3.NewDecoder(bytes.NewReader(readRepo(t, "kind-config/cluster.yaml")))
	d.KnownFields(true)
	var c v1alpha4.Cluster
	if err := d.Decode(&c); err != nil {
		t.Fatalf("cluster.yaml: %v", err)
	}
	return &c
}

// unitOptions parses a systemd unit file of the image.
func unitOptions(t *testing.T, nodePath string) []*unit.UnitOption {
	t.Helper()
	opts, err := unit.DeserializeOptions(bytes.NewReader(readNode(t, nodePath)))
	if err != nil {
		t.Fatalf("%s: %v", nodePath, err)
	}
	// go-systemd keeps continuation lines as they are; systemd replaces each
	// backslash-newline with a space.
	for _, o := range opts {
		o.Value = strings.ReplaceAll(o.Value, "\\\n", " ")
	}
	return opts
}

// unitValues returns the values of section's key, in order.
func unitValues(opts []*unit.UnitOption, section, key string) []string {
	var vs []string
	for _, o := range opts {
		if o.Section == section && o.Name == key {
			vs = append(vs, o.Value)
		}
	}
	return vs
}

// proxyCommand returns the CRI proxy unit's ExecStart: the binary and its
// -name=value flags.
func proxyCommand(t *testing.T) (string, map[string]string) {
	t.Helper()
	starts := unitValues(unitOptions(t, "/etc/systemd/system/cri-proxy.service"), "Service", "ExecStart")
	if len(starts) != 1 {
		t.Fatalf("cri-proxy.service: %d ExecStart lines, want 1", len(starts))
	}
	if strings.ContainsAny(starts[0], `"'\`) {
		t.Fatalf("cri-proxy.service: ExecStart %q quotes or escapes: the tests read it as plain words", starts[0])
	}
	words := strings.Fields(starts[0])
	flags := map[string]string{}
	for _, w := range words[1:] {
		if w == "$CRI_PROXY_ARGS" {
			continue
		}
		name, value, ok := strings.Cut(strings.TrimPrefix(w, "-"), "=")
		if !ok || !strings.HasPrefix(w, "-") || strings.HasPrefix(w, "--") {
			t.Fatalf("cri-proxy.service: ExecStart word %q is not -name=value", w)
		}
		flags[name] = value
	}
	return words[0], flags
}

// proxyFlag returns an ExecStart flag of the CRI proxy unit, which must be
// set there (the tests do not assume the proxy's defaults).
func proxyFlag(t *testing.T, name string) string {
	t.Helper()
	_, flags := proxyCommand(t)
	v, ok := flags[name]
	if !ok {
		t.Fatalf("cri-proxy.service: ExecStart does not set -%s", name)
	}
	return v
}

// kindModuleDir is the directory of the kind module this module requires.
func kindModuleDir(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kind").Output()
	if err != nil {
		t.Fatalf("go list -m sigs.k8s.io/kind: %v", err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		t.Fatal("go list -m sigs.k8s.io/kind: no directory (module not downloaded?)")
	}
	return dir
}

// kindTemplate returns the kubeadm config template kind uses for
// Kubernetes 1.36 and later (kubeadm v1beta4), read from kind's source:
// its package is internal to kind.
func kindTemplate(t *testing.T) *template.Template {
	t.Helper()
	file := filepath.Join(kindModuleDir(t), "pkg/cluster/internal/kubeadm/config.go")
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			vs := s.(*ast.ValueSpec)
			if len(vs.Names) != 1 || vs.Names[0].Name != "ConfigTemplateBetaV4" || len(vs.Values) != 1 {
				continue
			}
			lit, ok := vs.Values[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				t.Fatalf("%s: ConfigTemplateBetaV4 is not a string literal", file)
			}
			src, err := strconv.Unquote(lit.Value)
			if err != nil {
				t.Fatal(err)
			}
			// Execute fails on a field of kind's template that kindData lacks.
			tmpl, err := template.New("kubeadm-config").Parse(src)
			if err != nil {
				t.Fatal(err)
			}
			return tmpl
		}
	}
	t.Fatalf("%s: no ConfigTemplateBetaV4", file)
	return nil
}

// kindData is the data kind gives its kubeadm config template
// (kubeadm.ConfigData with its derived fields, internal to kind).
type kindData struct {
	ClusterName, KubernetesVersion, ControlPlaneEndpoint string
	APIBindPort                                          int
	APIServerAddress, NodeProvider                       string
	ControlPlane                                         bool
	NodeAddress, NodeName, Token                         string
	KubeProxyMode, PodSubnet, ServiceSubnet              string
	FeatureGates                                         map[string]bool
	IPFamily                                             v1alpha4.ClusterIPFamily
	NodeLabels                                           string
	RootlessProvider                                     bool
	AdvertiseAddress, DockerStableTag                    string
	SortedFeatureGates                                   []struct {
		Name  string
		Value bool
	}
	FeatureGatesString, RuntimeConfigString string
	KubeadmFeatureGates                     map[string]bool
	IPv6                                    bool
	CgroupDriver                            string
	JoinSkipPhases, InitSkipPhases          []string
}

// kindConfig renders kind's kubeadm config for one node of the cluster as
// kind v0.33.0 does with the docker provider (pkg/cluster/internal/create/
// actions/config and kubeadm.ConfigData.Derive), for Kubernetes version
// kubeVersion (the node image's /kind/version), with the node address addr.
func kindConfig(t *testing.T, c *v1alpha4.Cluster, node string, controlPlane bool, kubeVersion, addr string) string {
	t.Helper()
	c = c.DeepCopy()
	v1alpha4.SetDefaultsCluster(c)
	if len(c.FeatureGates) > 0 || len(c.RuntimeConfig) > 0 {
		t.Fatal("kindConfig renders clusters without featureGates and runtimeConfig only")
	}
	d := kindData{
		ClusterName:          c.Name,
		KubernetesVersion:    kubeVersion,
		ControlPlaneEndpoint: c.Name + "-control-plane:6443",
		APIBindPort:          6443,
		APIServerAddress:     c.Networking.APIServerAddress,
		NodeProvider:         "docker",
		ControlPlane:         controlPlane,
		NodeAddress:          addr,
		NodeName:             node,
		Token:                "abcdef.0123456789abcdef",
		KubeProxyMode:        string(c.Networking.KubeProxyMode),
		PodSubnet:            c.Networking.PodSubnet,
		ServiceSubnet:        c.Networking.ServiceSubnet,
		IPFamily:             c.Networking.IPFamily,
		AdvertiseAddress:     addr,
		DockerStableTag:      kubeVersion,
		IPv6:                 c.Networking.IPFamily == v1alpha4.IPv6Family,
		CgroupDriver:         "systemd",
		JoinSkipPhases:       []string{"preflight"},
		InitSkipPhases:       []string{"preflight"},
	}
	var b bytes.Buffer
	if err := kindTemplate(t).Execute(&b, d); err != nil {
		t.Fatalf("kind's kubeadm config template: %v", err)
	}
	return b.String()
}

// kindPatch applies merge patches to a kubeadm config as kind does: each
// patch document applies to the documents of its kind (and apiVersion, if
// set), as an RFC 7386 merge patch, and kind's "metadata: name: config"
// marker is then removed. Stricter than kind, it requires each patch to
// match exactly one document (kind skips a patch that matches none without a
// word) and extraArgs lists to keep every name kind generated: kind v0.33.0
// merges these lists by name, RFC 7386 replaces them, and only complete lists
// give the same result either way.
func kindPatch(t *testing.T, config string, patches []string) string {
	t.Helper()
	docs := splitYAML(t, config)
	for _, raw := range patches {
		for _, p := range splitYAML(t, raw) {
			pm := typeMeta(t, p)
			if pm.APIVersion == "" {
				t.Errorf("patch of %s sets no apiVersion: it would apply to every version", pm.Kind)
			}
			matched := 0
			for i, d := range docs {
				dm := typeMeta(t, d)
				if dm.Kind != pm.Kind || (pm.APIVersion != "" && dm.APIVersion != pm.APIVersion) {
					continue
				}
				matched++
				checkCompleteArgs(t, pm.Kind, decodeJSON(t, d), decodeJSON(t, p))
				out, err := jsonpatch.MergePatch(d, p)
				if err != nil {
					t.Fatalf("patch of %s: %v", pm.Kind, err)
				}
				docs[i] = out
			}
			if matched != 1 {
				t.Errorf("patch of %s %s matches %d documents of kind's kubeadm config, want 1", pm.APIVersion, pm.Kind, matched)
			}
		}
	}
	var out []string
	for _, d := range docs {
		y, err := yaml.JSONToYAML(d)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(y))
	}
	return strings.ReplaceAll(strings.Join(out, "---\n"), "metadata:\n  name: config\n", "")
}

// splitYAML returns the documents of a YAML stream, as JSON.
func splitYAML(t *testing.T, s string) [][]byte {
	t.Helper()
	r := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(s)))
	var docs [][]byte
	for {
		d, err := r.Read()
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatal(err)
		}
		j, err := yaml.YAMLToJSON(d)
		if err != nil {
			t.Fatal(err)
		}
		if s := strings.TrimSpace(string(j)); s != "null" && s != "" {
			docs = append(docs, j)
		}
	}
}

func typeMeta(t *testing.T, doc []byte) metav1.TypeMeta {
	t.Helper()
	var m metav1.TypeMeta
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func decodeJSON(t *testing.T, doc []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(doc, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// checkCompleteArgs fails for an extraArgs (or kubeletExtraArgs) list of
// patch that lacks a name the same list of target has.
func checkCompleteArgs(t *testing.T, where string, target, patch any) {
	t.Helper()
	pm, ok := patch.(map[string]any)
	if !ok {
		return
	}
	tm, _ := target.(map[string]any)
	for k, pv := range pm {
		if k == "certSANs" {
			t.Errorf("%s: patches certSANs, which kind merges its own way", where)
		}
		if k != "extraArgs" && k != "kubeletExtraArgs" {
			checkCompleteArgs(t, where+"."+k, tm[k], pv)
			continue
		}
		have := argNames(pv)
		for _, n := range argNames(tm[k]) {
			if !slices.Contains(have, n) {
				t.Errorf("%s.%s: lacks %q, which kind generates: kind v0.33.0 would keep it, older kinds drop it", where, k, n)
			}
		}
	}
}

func argNames(list any) []string {
	var names []string
	l, _ := list.([]any)
	for _, a := range l {
		if m, ok := a.(map[string]any); ok {
			names = append(names, fmt.Sprint(m["name"]))
		}
	}
	return names
}
