package localcluster

import (
	"fmt"
	"net"
	"path/filepath"

	"sigs.k8s.io/pod-networks/internal/localcluster/pki"
)

// identity is a client certificate and the kubeconfig that uses it.
type identity struct {
	file string // base name under pki/ and config/
	cn   string
	orgs []string
}

func (o *Options) identities() []identity {
	ids := []identity{
		{"admin", "kubernetes-admin", []string{"system:masters"}},
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}},
		{"controller-manager", "system:kube-controller-manager", nil},
		{"scheduler", "system:kube-scheduler", nil},
	}
	for _, n := range o.nodes() {
		ids = append(ids, identity{n.Name + "-kubelet", "system:node:" + n.Name, []string{"system:nodes"}})
		if o.CRIProxy {
			ids = append(ids, identity{n.Name + "-cri-proxy", "system:pod-networks:cri-proxy:" + n.Name, []string{proxyGroup}})
		}
	}
	return ids
}

func (o *Options) certPath(name string) string { return filepath.Join(o.pkiDir(), name+".crt") }
func (o *Options) keyPath(name string) string  { return filepath.Join(o.pkiDir(), name+".key") }
func (o *Options) kubeconfigFor(name string) string {
	if name == "admin" {
		return o.Kubeconfig()
	}
	return filepath.Join(o.StateDir, "config", name+".kubeconfig")
}

// writePKI creates the CA, the apiserver serving certificate, one client
// certificate and kubeconfig per identity, and the service-account key pair.
func (o *Options) writePKI() error {
	ca, err := pki.NewCA("pod-networks-ca")
	if err != nil {
		return err
	}
	if err := ca.WriteFiles(o.certPath("ca"), o.keyPath("ca")); err != nil {
		return err
	}
	err = ca.IssueFiles(pki.CertSpec{
		CommonName: "kube-apiserver",
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		IPs:    []net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP(serviceClusterIP)},
		Server: true,
	}, o.certPath("apiserver"), o.keyPath("apiserver"))
	if err != nil {
		return err
	}
	for _, id := range o.identities() {
		if err := ca.IssueFiles(pki.CertSpec{CommonName: id.cn, Organizations: id.orgs, Client: true},
			o.certPath(id.file), o.keyPath(id.file)); err != nil {
			return fmt.Errorf("issue %s certificate: %w", id.file, err)
		}
		if id.file == "apiserver-kubelet-client" {
			continue
		}
		err := pki.WriteKubeconfig(o.kubeconfigFor(id.file), pki.Kubeconfig{
			Server: o.APIServerURL(), CAPEM: ca.CertPEM(), ClusterName: "pod-networks", User: id.file,
			ClientCertPath: o.certPath(id.file), ClientKeyPath: o.keyPath(id.file),
		})
		if err != nil {
			return err
		}
	}
	if err := pki.WriteServiceAccountKey(o.keyPath("sa"), filepath.Join(o.pkiDir(), "sa.pub")); err != nil {
		return err
	}
	return nil
}
