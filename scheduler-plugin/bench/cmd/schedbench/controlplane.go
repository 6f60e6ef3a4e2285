package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
)

// controlPlane is etcd and kube-apiserver, started by startControlPlane.
type controlPlane struct {
	config     *rest.Config
	kubeconfig string
	procs      []*exec.Cmd
}

func (c *controlPlane) stop() {
	for _, p := range slices.Backward(c.procs) {
		_ = p.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = p.Process.Kill()
			<-done
		}
	}
}

// startControlPlane starts etcd and kube-apiserver on free loopback ports,
// with a static admin token, and waits until the apiserver is ready.
func startControlPlane(ctx context.Context, o options, dir string) (cp *controlPlane, err error) {
	cp = &controlPlane{}
	defer func() {
		if err != nil {
			cp.stop()
		}
	}()
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdURL := fmt.Sprintf("http://127.0.0.1:%d", ports[0])
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", ports[1])
	if err := cp.start(ctx, dir, "etcd", o.etcd,
		"--name=bench", "--data-dir="+filepath.Join(dir, "etcd"),
		"--listen-client-urls="+etcdURL, "--advertise-client-urls="+etcdURL,
		"--listen-peer-urls="+peerURL, "--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=bench="+peerURL, "--unsafe-no-fsync", "--log-level=warn"); err != nil {
		return nil, err
	}
	token := rand.Text()
	tokens := filepath.Join(dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return nil, err
	}
	saKey := filepath.Join(dir, "sa.key")
	if err := writeRSAKey(saKey); err != nil {
		return nil, err
	}
	server := fmt.Sprintf("https://127.0.0.1:%d", ports[2])
	if err := cp.start(ctx, dir, "kube-apiserver", o.apiserver,
		"--etcd-servers="+etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1", fmt.Sprintf("--secure-port=%d", ports[2]),
		"--cert-dir="+filepath.Join(dir, "apiserver-certs"),
		"--token-auth-file="+tokens, "--authorization-mode=AlwaysAllow",
		// No controller-manager makes service accounts or lifts the
		// not-ready taint TaintNodesByCondition puts on new nodes.
		"--disable-admission-plugins=ServiceAccount,TaintNodesByCondition",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-account-key-file="+saKey, "--service-account-signing-key-file="+saKey,
		"--endpoint-reconciler-type=none", "--profiling=false",
		"--feature-gates=PodNetworks=true"); err != nil {
		return nil, err
	}
	cp.config = &rest.Config{Host: server, BearerToken: token, QPS: 2000, Burst: 4000,
		TLSClientConfig: rest.TLSClientConfig{Insecure: true}} // the apiserver's self-signed certificate, on loopback
	cp.kubeconfig = filepath.Join(dir, "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: bench
  cluster: {server: %q, insecure-skip-tls-verify: true}
users:
- name: admin
  user: {token: %q}
contexts:
- name: bench
  context: {cluster: bench, user: admin}
current-context: bench
`, server, token)
	if err := os.WriteFile(cp.kubeconfig, []byte(kc), 0o600); err != nil {
		return nil, err
	}
	client := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // #nosec: loopback, self-signed
	deadline := time.Now().Add(90 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, server+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return cp, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("kube-apiserver not ready after 90s: %v (log %s)", err, filepath.Join(dir, "kube-apiserver.log"))
		}
		for _, p := range cp.procs {
			if p.ProcessState != nil {
				return nil, fmt.Errorf("%s exited: %s (log %s)", filepath.Base(p.Path), p.ProcessState, filepath.Join(dir, filepath.Base(p.Path)+".log"))
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// start runs a daemon with its output in dir/<name>.log.
func (c *controlPlane) start(ctx context.Context, dir, name, bin string, args ...string) error {
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		return err
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	log.Close()
	c.procs = append(c.procs, cmd)
	go func() { <-ctx.Done(); _ = cmd.Process.Signal(syscall.SIGTERM) }()
	return nil
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func writeRSAKey(path string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
}

// startClaimController runs kube-controller-manager with only the
// resourceclaim controller: it makes each pod's ResourceClaim from the
// template the pod names, and removes the claim's reservation when the pod
// is gone, as in any cluster using DRA.
func (c *controlPlane) startClaimController(ctx context.Context, o options, dir string) error {
	return c.start(ctx, dir, "kube-controller-manager", o.controllerManager,
		"--kubeconfig="+c.kubeconfig, "--controllers=resourceclaim-controller",
		"--leader-elect=false", "--secure-port=0", "--use-service-account-credentials=false",
		"--kube-api-qps=2000", "--kube-api-burst=4000")
}
