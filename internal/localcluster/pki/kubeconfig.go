package pki

import (
	"fmt"
	"path/filepath"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// Kubeconfig describes a kubeconfig with one cluster, one user that
// authenticates with a client certificate, and one context selecting both.
type Kubeconfig struct {
	// Server is the API server URL, e.g. "https://127.0.0.1:6443".
	Server string
	// CAPEM is the PEM CA bundle that verifies Server; it is embedded as
	// certificate-authority-data.
	CAPEM []byte
	// ClusterName and User name the cluster and user entries; the context
	// is named "<User>@<ClusterName>".
	ClusterName, User string
	// ClientCertPath and ClientKeyPath are the client certificate and key
	// files, referenced by absolute path; both files must already exist.
	ClientCertPath, ClientKeyPath string
}

// WriteKubeconfig writes kc as a kubeconfig to path with mode 0600, replacing
// an existing file and creating missing parent directories. It fails without
// writing if clientcmd rejects the config, e.g. because a field is empty or a
// client file does not exist.
func WriteKubeconfig(path string, kc Kubeconfig) error {
	if kc.ClientCertPath == "" || kc.ClientKeyPath == "" {
		return fmt.Errorf("write kubeconfig %s: client certificate and key paths must not be empty", path)
	}
	certPath, err := filepath.Abs(kc.ClientCertPath)
	if err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	keyPath, err := filepath.Abs(kc.ClientKeyPath)
	if err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	ctx := kc.User + "@" + kc.ClusterName
	cfg := clientcmdapi.Config{
		Clusters: map[string]*clientcmdapi.Cluster{
			kc.ClusterName: {Server: kc.Server, CertificateAuthorityData: kc.CAPEM},
		},
		AuthInfos: map[string]*clientcmdapi.AuthInfo{
			kc.User: {ClientCertificate: certPath, ClientKey: keyPath},
		},
		Contexts:       map[string]*clientcmdapi.Context{ctx: {Cluster: kc.ClusterName, AuthInfo: kc.User}},
		CurrentContext: ctx,
	}
	if err := clientcmd.Validate(cfg); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	if err := clientcmd.WriteToFile(cfg, path); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}
