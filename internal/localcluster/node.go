package localcluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

func (l layout) containerd(n Node) daemon {
	return daemon{name: n.Name + "-containerd", path: l.bin("containerd"),
		args: []string{"--config", n.containerdConfig(), "--log-level", "info"}}
}

func (l layout) criProxy(n Node) daemon {
	return daemon{name: n.Name + "-cri-proxy", path: l.bin("cri-proxy"), args: []string{
		"-listen=" + n.ProxySocket(),
		"-upstream=" + n.ContainerdSocket(),
		"-networks-dir=" + n.NetworksDir(),
		// The primary network is containerd's: refuse extra networks that
		// would share its name or lease dir.
		"-runtime-cni-conf-dir=" + n.CNIConfDir(),
		"-cni-bin-dir=" + l.cniBinDir(),
		"-state-dir=" + n.ProxyStateDir(),
		fmt.Sprintf("-metrics-address=127.0.0.1:%d", n.ProxyPort),
		"-kubeconfig=" + l.kubeconfig(n.Name+"-cri-proxy"),
		"-node-name=" + n.Name,
		fmt.Sprintf("-node-annotation=%t", l.opts.ProxyNodeAnnotation),
		"-default-network-name=primary",
		"-resync-interval=2s",
		// Test clusters come and go: reconcile often, so what a fault
		// left is cleaned within seconds rather than a minute.
		"-reconcile-interval=10s",
		"-v=2",
	}}
}

func (l layout) kubelet(n Node) daemon {
	return daemon{name: n.Name + "-kubelet", path: l.kubeletBin(n), args: []string{
		"--config=" + n.kubeletConfig(),
		"--kubeconfig=" + l.kubeconfig(n.Name+"-kubelet"),
		"--hostname-override=" + n.Name,
		"--root-dir=" + n.KubeletDir(),
		// The default is /var/lib/kubelet/pki for every kubelet on the host.
		"--cert-dir=" + filepath.Join(n.KubeletDir(), "pki"),
		"--v=1",
	}}
}

// containerdReady checks the node's containerd answers on its socket; it
// runs ctr only once the socket exists, not on every poll before.
func (l layout) containerdReady(n Node) func(context.Context) error {
	return func(ctx context.Context) error {
		if _, err := os.Stat(n.ContainerdSocket()); err != nil {
			return err
		}
		return l.ctr(ctx, n, "version")
	}
}

// importImages imports the pause and toolbox archives into the node's
// containerd, in the k8s.io namespace where the CRI plugin looks.
func (l layout) importImages(n Node) func(context.Context) error {
	return func(ctx context.Context) error {
		for _, img := range []string{pauseArchive, toolboxArchive} {
			path := filepath.Join(l.opts.ImagesDir, img)
			if err := l.ctr(ctx, n, "-n", "k8s.io", "images", "import", "--local", path); err != nil {
				return fmt.Errorf("%s: import %s: %w", n.Name, img, err)
			}
		}
		return nil
	}
}

func (l layout) ctr(ctx context.Context, n Node, args ...string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, l.bin("ctr"), append([]string{"--address", n.ContainerdSocket()}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

func (l layout) proxyHealthy(n Node) func(context.Context) error {
	return func(ctx context.Context) error {
		return httpOK(ctx, httpClient, fmt.Sprintf("http://127.0.0.1:%d/healthz", n.ProxyPort))
	}
}

func (l layout) kubeletHealthy(n Node) func(context.Context) error {
	return func(ctx context.Context) error {
		return httpOK(ctx, httpClient, fmt.Sprintf("http://127.0.0.1:%d/healthz", n.HealthzPort))
	}
}
