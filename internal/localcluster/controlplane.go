package localcluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	kubeschedulerv1 "k8s.io/kube-scheduler/config/v1"
	"sigs.k8s.io/yaml"

	"sigs.k8s.io/pod-networks/internal/poll"
	schedconfig "sigs.k8s.io/pod-networks/scheduler-plugin/config"
)

const (
	serviceCIDR      = "10.96.0.0/16"
	serviceClusterIP = "10.96.0.1"
)

func (l layout) etcd() daemon {
	client := fmt.Sprintf("http://127.0.0.1:%d", l.opts.EtcdPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", l.opts.EtcdPort+1)
	return daemon{name: "etcd", path: l.bin("etcd"), args: []string{
		"--name=default", "--data-dir=" + l.etcdDir(),
		"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=default=" + peer,
		"--unsafe-no-fsync", // throwaway data: fsync only slows bring-up
		"--log-level=warn",
	}}
}

func (l layout) apiserver() daemon {
	return daemon{name: "kube-apiserver", path: l.kubeBin("kube-apiserver"), args: append([]string{
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", l.opts.EtcdPort),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", l.opts.APIServerPort),
		"--cert-dir=" + filepath.Join(l.pkiDir(), "apiserver-generated"),
		"--tls-cert-file=" + l.certPath("apiserver"), "--tls-private-key-file=" + l.keyPath("apiserver"),
		"--client-ca-file=" + l.certPath("ca"),
		"--kubelet-client-certificate=" + l.certPath("apiserver-kubelet-client"),
		"--kubelet-client-key=" + l.keyPath("apiserver-kubelet-client"),
		// Node names do not resolve on this machine.
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--service-cluster-ip-range=" + serviceCIDR,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + filepath.Join(l.pkiDir(), "sa.pub"),
		"--service-account-signing-key-file=" + l.keyPath("sa"),
		// A loopback advertise address cannot be an endpoint of the
		// kubernetes Service; pods here reach the apiserver by no Service.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	}, l.featureGateArgs()...)}
}

func (l layout) controllerManager() daemon {
	kc := l.kubeconfig("controller-manager")
	return daemon{name: "kube-controller-manager", path: l.kubeBin("kube-controller-manager"), args: append([]string{
		"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", l.opts.ControllerManagerPort),
		"--service-account-private-key-file=" + l.keyPath("sa"),
		"--root-ca-file=" + l.certPath("ca"),
		"--use-service-account-credentials=true",
		"--service-cluster-ip-range=" + serviceCIDR,
		"--leader-elect=false",
		"--profiling=false",
		// The default is a host path under /usr/libexec.
		"--flex-volume-plugin-dir=" + filepath.Join(l.opts.StateDir, "flexvolume"),
	}, l.featureGateArgs()...)}
}

func (l layout) schedulerConfigFile() string {
	return filepath.Join(l.configDir(), "kube-scheduler.yaml")
}

// usesSchedulerConfig reports whether the scheduler runs with --config:
// the NodeNetworks scheduler's configuration, or Options.SchedulerConfig.
func (l layout) usesSchedulerConfig() bool {
	return l.opts.NetworkScheduler || l.opts.SchedulerConfig != ""
}

func (l layout) scheduler() daemon {
	kc := l.kubeconfig("scheduler")
	bin := l.kubeBin("kube-scheduler")
	if l.opts.NetworkScheduler {
		bin = l.kubeBin("pod-networks-scheduler")
	}
	gates := l.featureGateArgs()
	if l.opts.StockScheduler {
		bin, gates = l.bin("kube-scheduler"), nil // it does not know the gate
	}
	if l.opts.SchedulerBinary != "" {
		bin = l.opts.SchedulerBinary
	}
	args := append([]string{
		"--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", l.opts.SchedulerPort),
		"--profiling=false",
	}, gates...)
	if l.usesSchedulerConfig() {
		args = append(args, "--config="+l.schedulerConfigFile())
	} else {
		args = append(args, "--kubeconfig="+kc, "--leader-elect=false")
	}
	return daemon{name: "kube-scheduler", path: bin, args: args}
}

// schedulerConfig is the KubeSchedulerConfiguration the scheduler runs
// with, decoded strictly into the upstream type, with the scheduler's
// kubeconfig set.
func (l layout) schedulerConfig() ([]byte, error) {
	b := schedconfig.SchedulerConfig()
	if l.opts.SchedulerConfig != "" {
		var err error
		if b, err = os.ReadFile(l.opts.SchedulerConfig); err != nil {
			return nil, fmt.Errorf("scheduler config: %w", err)
		}
	}
	var cfg kubeschedulerv1.KubeSchedulerConfiguration
	if err := yaml.UnmarshalStrict(b, &cfg); err != nil {
		return nil, fmt.Errorf("scheduler config: %w", err)
	}
	cfg.ClientConnection.Kubeconfig = l.kubeconfig("scheduler")
	return yaml.Marshal(&cfg)
}

// apiserverReady checks /readyz as the cluster admin, verifying the
// apiserver's certificate against the cluster CA. The client is made on
// the first check: the certificates are written after the layout.
func (l layout) apiserverReady() func(context.Context) error {
	var client *http.Client
	return func(ctx context.Context) error {
		if client == nil {
			cert, err := tls.LoadX509KeyPair(l.certPath("admin"), l.keyPath("admin"))
			if err != nil {
				return poll.Fatal(err)
			}
			caPEM, err := os.ReadFile(l.certPath("ca"))
			if err != nil {
				return poll.Fatal(err)
			}
			pool := x509.NewCertPool()
			pool.AppendCertsFromPEM(caPEM)
			client = &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
				TLSClientConfig: &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool}}}
		}
		return httpOK(ctx, client, l.apiServerURL()+"/readyz")
	}
}

// healthz checks a component's /healthz on its self-signed secure port.
func (l layout) healthz(port int) func(context.Context) error {
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // #nosec: a self-signed component's /healthz
	return func(ctx context.Context) error {
		return httpOK(ctx, client, fmt.Sprintf("https://127.0.0.1:%d/healthz", port))
	}
}

func (l layout) etcdHealthy(ctx context.Context) error {
	return httpOK(ctx, httpClient, fmt.Sprintf("http://127.0.0.1:%d/health", l.opts.EtcdPort))
}

var httpClient = &http.Client{Timeout: 2 * time.Second}

func httpOK(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
