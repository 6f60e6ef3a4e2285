//go:build kindcontext

package kindconfig

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/unit"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
)

// stagedContext is the build context hack/kind-image-context.sh staged
// (hack/test.sh kind sets KIND_IMAGE_CONTEXT).
func stagedContext(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("KIND_IMAGE_CONTEXT")
	if dir == "" {
		t.Fatal("KIND_IMAGE_CONTEXT is not set: run hack/test.sh kind, which stages the context first")
	}
	if _, err := os.Stat(filepath.Join(dir, "Dockerfile")); err != nil {
		t.Fatalf("no staged context: %v", err)
	}
	return dir
}

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	keyword string
	args    []string
	line    string
}

// dockerfile reads the staged Dockerfile. It reads only the plain forms the
// image's Dockerfile uses (ARG, FROM, COPY without flags, RUN) and fails on
// anything else, rather than misread it.
func dockerfile(t *testing.T, ctx string) []instruction {
	t.Helper()
	f, err := os.Open(filepath.Join(ctx, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []instruction
	var cur strings.Builder
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (l == "" || strings.HasPrefix(l, "#")) {
			continue
		}
		if more, ok := strings.CutSuffix(l, `\`); ok {
			cur.WriteString(more + " ")
			continue
		}
		cur.WriteString(l)
		words := strings.Fields(cur.String())
		in := instruction{keyword: strings.ToUpper(words[0]), args: words[1:], line: cur.String()}
		cur.Reset()
		switch in.keyword {
		case "ARG", "FROM", "RUN":
		case "COPY":
			for _, a := range in.args {
				if strings.HasPrefix(a, "--") || strings.HasPrefix(a, "[") {
					t.Fatalf("Dockerfile: %q: the test reads COPY <src>... <dest> only", in.line)
				}
			}
			if len(in.args) < 2 {
				t.Fatalf("Dockerfile: %q: no source or destination", in.line)
			}
		default:
			t.Fatalf("Dockerfile: %q: the test reads ARG, FROM, COPY and RUN only", in.line)
		}
		out = append(out, in)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// imageAdds resolves the Dockerfile's COPY instructions into the files they
// put in the image: node path to staged file. Every source must exist.
func imageAdds(t *testing.T, ctx string) map[string]string {
	t.Helper()
	adds := map[string]string{}
	add := func(node, staged string) {
		if prev, dup := adds[node]; dup {
			t.Errorf("Dockerfile: %s copied twice (%s, %s)", node, prev, staged)
		}
		adds[node] = staged
	}
	for _, in := range dockerfile(t, ctx) {
		if in.keyword != "COPY" {
			continue
		}
		srcs, dest := in.args[:len(in.args)-1], in.args[len(in.args)-1]
		if len(srcs) > 1 && !strings.HasSuffix(dest, "/") {
			t.Errorf("Dockerfile: %q: several sources need a directory destination", in.line)
		}
		for _, src := range srcs {
			staged := filepath.Join(ctx, src)
			fi, err := os.Stat(staged)
			if err != nil {
				t.Errorf("Dockerfile: COPY source %s is not in the staged context: %v", src, err)
				continue
			}
			switch {
			case fi.IsDir():
				err := filepath.WalkDir(staged, func(p string, d fs.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return err
					}
					rel, _ := filepath.Rel(staged, p)
					add(path.Join(dest, filepath.ToSlash(rel)), p)
					return nil
				})
				if err != nil {
					t.Fatal(err)
				}
			case strings.HasSuffix(dest, "/"):
				add(path.Join(dest, path.Base(src)), staged)
			default:
				add(dest, staged)
			}
		}
	}
	return adds
}

// TestContextLayout checks that the image gets exactly the files the node's
// configuration names (imageFiles, imageBinaries), from the repository and
// the build, and that the context holds nothing else.
func TestContextLayout(t *testing.T) {
	ctx := stagedContext(t)
	if !bytes.Equal(readFile(t, filepath.Join(ctx, "Dockerfile")), readRepo(t, "kind-config/image/Dockerfile")) {
		t.Error("the staged Dockerfile differs from kind-config/image/Dockerfile")
	}
	adds := imageAdds(t, ctx)
	binaries := imageBinaries(t)
	used := map[string]bool{filepath.Join(ctx, "Dockerfile"): true}
	for node, staged := range adds {
		used[staged] = true
		fi, err := os.Stat(staged)
		if err != nil {
			t.Fatal(err)
		}
		if src, ok := imageFiles[node]; ok {
			if !bytes.Equal(readFile(t, staged), readRepo(t, src)) {
				t.Errorf("%s: the staged file differs from %s", node, src)
			}
			if fi.Mode().Perm() != 0o644 {
				t.Errorf("%s: mode %v, want 0644", node, fi.Mode().Perm())
			}
		} else if src, ok := binaries[node]; ok {
			if !bytes.Equal(readFile(t, staged), readFile(t, filepath.Join(repoRoot, "_output", src))) {
				t.Errorf("%s: the staged binary differs from _output/%s", node, src)
			}
			if fi.Mode().Perm() != 0o755 {
				t.Errorf("%s: mode %v, want 0755", node, fi.Mode().Perm())
			}
		} else {
			t.Errorf("the image gets %s (%s), which the tests do not know", node, staged)
		}
	}
	for node := range imageFiles {
		if _, ok := adds[node]; !ok {
			t.Errorf("the image lacks %s", node)
		}
	}
	for node := range binaries {
		if _, ok := adds[node]; !ok {
			t.Errorf("the image lacks %s", node)
		}
	}
	err := filepath.WalkDir(ctx, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !used[p] {
			t.Errorf("the context holds %s, which no COPY uses", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}

	var from, run string
	for _, in := range dockerfile(t, ctx) {
		switch in.keyword {
		case "FROM":
			from = in.line
		case "RUN":
			run += in.line + "\n"
		}
	}
	if from != "FROM ${KIND_NODE_IMAGE}" {
		t.Errorf("Dockerfile: %q, want FROM ${KIND_NODE_IMAGE}", from)
	}
	if !strings.Contains(string(readRepo(t, "kind-config/up.sh")), `--build-arg "KIND_NODE_IMAGE=${KIND_NODE_IMAGE}"`) {
		t.Error("up.sh does not build with KIND_NODE_IMAGE of hack/versions.env")
	}
	for _, want := range []string{"mkdir -p " + proxyFlag(t, "networks-dir"), "systemctl enable cri-proxy.service"} {
		if !strings.Contains(run, want) {
			t.Errorf("Dockerfile: RUN does not %s", want)
		}
	}
}

// elfMachines are the ELF machines of the architectures kind's node images
// are published for.
var elfMachines = map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}

// TestContextBinaries checks every binary the image gets: a static
// executable of this machine's architecture (the node image's platform,
// up.sh checks the Docker daemon's), the patched Kubernetes of KUBE_VERSION
// (it knows the PodNetworks gate), a proxy that knows every flag its unit
// and up.sh give it, and CNI plugins of CNI_PLUGINS_VERSION that support
// the cniVersion of every network that runs them.
func TestContextBinaries(t *testing.T) {
	ctx := stagedContext(t)
	adds := imageAdds(t, ctx)
	want, ok := elfMachines[runtime.GOARCH]
	if !ok {
		t.Fatalf("no kind node image for %s", runtime.GOARCH)
	}
	v := versions(t)
	for node := range imageBinaries(t) {
		staged := adds[node]
		if staged == "" {
			t.Errorf("the image lacks %s", node)
			continue
		}
		f, err := elf.Open(staged)
		if err != nil {
			t.Errorf("%s: %v", node, err)
			continue
		}
		if f.Machine != want || f.Type != elf.ET_EXEC {
			t.Errorf("%s: %v %v, want an executable for %v", node, f.Type, f.Machine, want)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP {
				t.Errorf("%s: dynamically linked: it would need the node image's libc", node)
			}
		}
		f.Close()
	}
	for _, node := range []string{"/usr/bin/kubelet", "/usr/local/pod-networks/bin/kube-apiserver",
		"/usr/local/pod-networks/bin/kube-controller-manager", "/usr/local/pod-networks/bin/pod-networks-scheduler"} {
		if out := run(t, adds[node], "--version"); !strings.Contains(out, v["KUBE_VERSION"]) {
			t.Errorf("%s --version: %q, want %s", node, out, v["KUBE_VERSION"])
		}
		if out := run(t, adds[node], "--help"); !strings.Contains(out, "PodNetworks=true|false") {
			t.Errorf("%s --help does not list the PodNetworks gate: not the patched build", node)
		}
	}

	bin, flags := proxyCommand(t)
	usage, _ := exec.Command(adds[bin], "-h").CombinedOutput()
	if !strings.Contains(string(usage), "Usage of cri-proxy") {
		t.Fatalf("%s -h: %s", bin, usage)
	}
	names := slices.Collect(maps.Keys(flags))
	args := regexp.MustCompile(`CRI_PROXY_ARGS=([^\\']*)`).FindStringSubmatch(string(readRepo(t, "kind-config/up.sh")))
	if args == nil {
		t.Fatal("up.sh: no CRI_PROXY_ARGS=")
	}
	for _, w := range strings.Fields(args[1]) {
		if n, _, ok := strings.Cut(w, "="); ok && strings.HasPrefix(n, "-") {
			names = append(names, strings.TrimPrefix(n, "-"))
		}
	}
	if !slices.Contains(names, "kubeconfig") {
		t.Errorf("up.sh: no -kubeconfig in CRI_PROXY_ARGS (read %v)", names)
	}
	for _, n := range names {
		if !strings.Contains(string(usage), "  -"+n+" ") && !strings.Contains(string(usage), "  -"+n+"\n") {
			t.Errorf("%s does not know -%s", bin, n)
		}
	}

	c := loadCluster(t)
	for i := range 2 {
		n := c.Nodes[nodeIndex(t, c, v1alpha4.WorkerRole, i)]
		nets, _ := catalogOf(t, filepath.Join(repoRoot, n.ExtraMounts[0].HostPath), t.TempDir())
		for _, nw := range nets {
			for _, p := range nw.Plugins {
				plugin := adds[path.Join(nodeCNIBinDir, p)]
				if out := run(t, plugin); !strings.Contains(out, v["CNI_PLUGINS_VERSION"]) {
					t.Errorf("%s: %q, want version %s", p, out, v["CNI_PLUGINS_VERSION"])
				}
				cmd := exec.Command(plugin)
				cmd.Env = []string{"CNI_COMMAND=VERSION"}
				cmd.Stdin = strings.NewReader(`{"cniVersion":"` + nw.CNIVersion + `"}`)
				out, err := cmd.Output()
				var info struct {
					Supported []string `json:"supportedVersions"`
				}
				if err != nil || json.Unmarshal(out, &info) != nil || !slices.Contains(info.Supported, nw.CNIVersion) {
					t.Errorf("%s (network %s): VERSION %s %v: cniVersion %s unsupported", p, nw.Name, out, err, nw.CNIVersion)
				}
			}
		}
	}
}

// run runs a staged binary and returns its output; it must succeed.
func run(t *testing.T, bin string, args ...string) string {
	t.Helper()
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Errorf("%s %v: %v\n%s", bin, args, err, out)
	}
	return string(out)
}

// TestContextSystemdVerify runs systemd-analyze verify on the proxy's unit
// and kubelet's (kind's unit, its drop-ins and ours) in a root laid out as
// the node image: the staged units and binaries, kind's units from the kind
// module, this machine's systemd units for the targets, and empty
// executables for the commands of kind's base image. It needs
// systemd-analyze; without it the units are not verified by systemd, and
// the test says so by skipping.
func TestContextSystemdVerify(t *testing.T) {
	ctx := stagedContext(t)
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze is not installed: the units are not verified by systemd here")
	}
	root := t.TempDir()
	copyTree(t, "/usr/lib/systemd/system", filepath.Join(root, "usr/lib/systemd/system"))
	if err := os.Symlink("usr/lib", filepath.Join(root, "lib")); err != nil {
		t.Fatal(err)
	}
	copyTree(t, filepath.Join(kindModuleDir(t), "images/base/files/etc/systemd/system"), filepath.Join(root, "etc/systemd/system"))
	adds := imageAdds(t, ctx)
	for node, staged := range adds {
		if strings.HasPrefix(node, "/etc/systemd/") {
			writeFile(t, filepath.Join(root, node), readFile(t, staged), 0o644)
		}
	}
	units := []string{"cri-proxy.service", "kubelet.service"}
	for _, u := range units {
		files, _ := filepath.Glob(filepath.Join(root, "etc/systemd/system", u+".d", "*.conf"))
		files = append(files, filepath.Join(root, "etc/systemd/system", u))
		for _, f := range files {
			rel, _ := filepath.Rel(root, f)
			_, ours := adds["/"+filepath.ToSlash(rel)]
			for _, exe := range execPaths(t, f) {
				if staged, ok := adds[exe]; ok {
					writeFile(t, filepath.Join(root, exe), readFile(t, staged), 0o755)
				} else if !ours || slices.Contains(baseImagePrograms, exe) {
					writeFile(t, filepath.Join(root, exe), nil, 0o755) // kind's base image has it
				}
			}
		}
	}
	out, err := exec.Command(analyze, append([]string{"verify", "--root=" + root}, units...)...).CombinedOutput()
	if err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify %v: %v\n%s", units, err, out)
	}
}

// baseImagePrograms are the programs of kind's base image our units run.
var baseImagePrograms = []string{"/bin/sh"}

// execPaths returns the programs a unit file's Exec* lines run.
func execPaths(t *testing.T, file string) []string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opts, err := unit.DeserializeOptions(f)
	if err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	var out []string
	for _, o := range opts {
		if !strings.HasPrefix(o.Name, "Exec") {
			continue
		}
		words := strings.Fields(strings.TrimLeft(o.Value, "-@:+!"))
		if len(words) > 0 && path.IsAbs(words[0]) {
			out = append(out, words[0])
		}
	}
	return out
}

func writeFile(t *testing.T, p string, b []byte, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, mode); err != nil {
		t.Fatal(err)
	}
}

// copyTree copies a directory's regular files and symlinks.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, target)
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(target, b, 0o644)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
