package localcluster

import (
	"fmt"
	"net"
	"path/filepath"

	"sigs.k8s.io/pod-networks/internal/localcluster/pki"
)

// identity is a client certificate and the kubeconfig that uses it.
type identity struct {
	name string // base name under pki/ and config/
	cn   string
	orgs []string
}

func (l layout) identities() []identity {
	ids := []identity{
		{"admin", "kubernetes-admin", []string{"system:masters"}},
		{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}},
		{"controller-manager", "system:kube-controller-manager", nil},
		{"scheduler", "system:kube-scheduler", nil},
	}
	for _, n := range l.nodes {
		ids = append(ids, identity{n.Name + "-kubelet", "system:node:" + n.Name, []string{"system:nodes"}})
		if n.CRIProxy {
			ids = append(ids, identity{n.Name + "-cri-proxy", "system:pod-networks:cri-proxy:" + n.Name, []string{proxyGroup}})
		}
	}
	return ids
}

// writePKI creates the CA, the apiserver serving certificate, one client
// certificate and kubeconfig per identity, and the service-account key pair.
func (l layout) writePKI() error {
	ca, err := pki.NewCA("pod-networks-ca")
	if err != nil {
		return err
	}
	if err := ca.WriteFiles(l.certPath("ca"), l.keyPath("ca")); err != nil {
		return err
	}
	err = ca.IssueFiles(pki.CertSpec{
		CommonName: "kube-apiserver",
		DNSNames: []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc",
			"kubernetes.default.svc.cluster.local"},
		IPs:    []net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP(serviceClusterIP)},
		Server: true,
	}, l.certPath("apiserver"), l.keyPath("apiserver"))
	if err != nil {
		return err
	}
	for _, id := range l.identities() {
		if err := ca.IssueFiles(pki.CertSpec{CommonName: id.cn, Organizations: id.orgs, Client: true},
			l.certPath(id.name), l.keyPath(id.name)); err != nil {
			return fmt.Errorf("issue %s certificate: %w", id.name, err)
		}
		if id.name == "apiserver-kubelet-client" {
			continue
		}
		err := pki.WriteKubeconfig(l.kubeconfig(id.name), pki.Kubeconfig{
			Server: l.apiServerURL(), CAPEM: ca.CertPEM(), ClusterName: "pod-networks", User: id.name,
			ClientCertPath: l.certPath(id.name), ClientKeyPath: l.keyPath(id.name),
		})
		if err != nil {
			return err
		}
	}
	return pki.WriteServiceAccountKey(l.keyPath("sa"), filepath.Join(l.pkiDir(), "sa.pub"))
}
