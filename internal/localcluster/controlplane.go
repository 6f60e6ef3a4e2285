package localcluster

import (
	schedconfig "sigs.k8s.io/pod-networks/scheduler-plugin/config"

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
)

const (
	serviceCIDR      = "10.96.0.0/16"
	serviceClusterIP = "10.96.0.1"
)

func (o *Options) etcdDaemon() daemon {
	client := fmt.Sprintf("http://127.0.0.1:%d", o.EtcdPort)
	peer := fmt.Sprintf("http://127.0.0.1:%d", o.EtcdPort+1)
	return daemon{name: "etcd", path: o.bin("etcd"), args: []string{
		"--name=default", "--data-dir=" + o.etcdDir(),
		"--listen-client-urls=" + client, "--advertise-client-urls=" + client,
		"--listen-peer-urls=" + peer, "--initial-advertise-peer-urls=" + peer,
		"--initial-cluster=default=" + peer,
		"--unsafe-no-fsync", // throwaway data: fsync only slows bring-up
		"--log-level=warn",
	}}
}

func (o *Options) apiserverDaemon() daemon {
	return daemon{name: "kube-apiserver", path: o.kubeBin("kube-apiserver"), args: append([]string{
		fmt.Sprintf("--etcd-servers=http://127.0.0.1:%d", o.EtcdPort),
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", o.APIServerPort),
		"--cert-dir=" + filepath.Join(o.pkiDir(), "apiserver-generated"),
		"--tls-cert-file=" + o.certPath("apiserver"), "--tls-private-key-file=" + o.keyPath("apiserver"),
		"--client-ca-file=" + o.certPath("ca"),
		"--kubelet-client-certificate=" + o.certPath("apiserver-kubelet-client"),
		"--kubelet-client-key=" + o.keyPath("apiserver-kubelet-client"),
		// Node names do not resolve on this machine.
		"--kubelet-preferred-address-types=InternalIP,Hostname",
		"--authorization-mode=Node,RBAC",
		"--enable-admission-plugins=NodeRestriction",
		"--allow-privileged=true",
		"--service-cluster-ip-range=" + serviceCIDR,
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file=" + filepath.Join(o.pkiDir(), "sa.pub"),
		"--service-account-signing-key-file=" + o.keyPath("sa"),
		// A loopback advertise address cannot be an endpoint of the
		// kubernetes Service; pods here reach the apiserver by no Service.
		"--endpoint-reconciler-type=none",
		"--profiling=false",
	}, o.featureGateArgs()...)}
}

func (o *Options) controllerManagerDaemon() daemon {
	kc := o.kubeconfigFor("controller-manager")
	return daemon{name: "kube-controller-manager", path: o.kubeBin("kube-controller-manager"), args: append([]string{
		"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", o.ControllerManagerPort),
		"--service-account-private-key-file=" + o.keyPath("sa"),
		"--root-ca-file=" + o.certPath("ca"),
		"--use-service-account-credentials=true",
		"--service-cluster-ip-range=" + serviceCIDR,
		"--leader-elect=false",
		"--profiling=false",
		// The default is a host path under /usr/libexec.
		"--flex-volume-plugin-dir=" + filepath.Join(o.StateDir, "flexvolume"),
	}, o.featureGateArgs()...)}
}

func (o *Options) schedulerDaemon() (daemon, error) {
	kc := o.kubeconfigFor("scheduler")
	bin := o.kubeBin("kube-scheduler")
	var config []byte
	if o.NetworkScheduler {
		bin, config = o.kubeBin("pod-networks-scheduler"), schedconfig.SchedulerConfig()
	}
	if o.SchedulerBinary != "" {
		bin = o.SchedulerBinary
	}
	args := []string{
		"--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--bind-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", o.SchedulerPort),
		"--profiling=false",
	}
	args = append(args, o.featureGateArgs()...)
	if o.SchedulerConfig != "" {
		b, err := os.ReadFile(o.SchedulerConfig)
		if err != nil {
			return daemon{}, fmt.Errorf("scheduler config: %w", err)
		}
		config = b
	}
	if config == nil {
		args = append(args, "--kubeconfig="+kc, "--leader-elect=false")
	} else {
		cfg := filepath.Join(o.StateDir, "config", "kube-scheduler.yaml")
		b := []byte(strings.ReplaceAll(string(config), "{{KUBECONFIG}}", kc))
		if err := os.WriteFile(cfg, b, 0o644); err != nil {
			return daemon{}, fmt.Errorf("scheduler config: %w", err)
		}
		args = append(args, "--config="+cfg)
	}
	return daemon{name: "kube-scheduler", path: bin, args: args}, nil
}

// httpsGetter returns a check that GETs url and wants 200; with a client
// identity it presents that certificate and verifies the cluster CA.
func (o *Options) httpsGetter(url, identity string) (func(context.Context) error, error) {
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}} // #nosec: /healthz of self-signed components
	if identity != "" {
		cert, err := tls.LoadX509KeyPair(o.certPath(identity), o.keyPath(identity))
		if err != nil {
			return nil, err
		}
		caPEM, err := os.ReadFile(o.certPath("ca"))
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(caPEM)
		tr.TLSClientConfig = &tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: pool}
	}
	client := &http.Client{Transport: tr, Timeout: 2 * time.Second}
	return func(ctx context.Context) error { return httpOK(ctx, client, url) }, nil
}

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

func (o *Options) etcdHealthy(ctx context.Context) error {
	return httpOK(ctx, &http.Client{Timeout: 2 * time.Second}, fmt.Sprintf("http://127.0.0.1:%d/health", o.EtcdPort))
}
