package pki

import (
	"encoding/json"
	"encoding/pem"
	"fmt"
	"path/filepath"
)

// Default names used by WriteKubeconfig when Kubeconfig.ClusterName or
// Kubeconfig.User is empty.
const (
	DefaultClusterName = "local"
	DefaultUser        = "admin"
)

// Kubeconfig describes a single-cluster, single-user kubeconfig that
// authenticates with a client certificate.
type Kubeconfig struct {
	// Server is the API server URL, e.g. "https://127.0.0.1:6443".
	// It must not be empty.
	Server string
	// CAPEM is the PEM-encoded CA bundle used to verify the API server; it
	// is embedded as certificate-authority-data. It must contain a PEM block.
	CAPEM []byte
	// ClientCertPath and ClientKeyPath are the client certificate and key
	// files. Relative paths are made absolute against the current working
	// directory. Both must not be empty.
	ClientCertPath, ClientKeyPath string
	// User is the name of the user entry; empty means DefaultUser.
	User string
	// ClusterName is the name of the cluster entry; empty means
	// DefaultClusterName.
	ClusterName string
}

// kubeconfig file structure (the subset of clientcmd/api/v1.Config we need).
type kcFile struct {
	APIVersion     string      `json:"apiVersion"`
	Kind           string      `json:"kind"`
	Clusters       []kcCluster `json:"clusters"`
	Users          []kcUser    `json:"users"`
	Contexts       []kcContext `json:"contexts"`
	CurrentContext string      `json:"current-context"`
	Preferences    struct{}    `json:"preferences"`
}

type kcCluster struct {
	Name    string `json:"name"`
	Cluster struct {
		Server                   string `json:"server"`
		CertificateAuthorityData []byte `json:"certificate-authority-data"` // base64 via encoding/json
	} `json:"cluster"`
}

type kcUser struct {
	Name string `json:"name"`
	User struct {
		ClientCertificate string `json:"client-certificate"`
		ClientKey         string `json:"client-key"`
	} `json:"user"`
}

type kcContext struct {
	Name    string `json:"name"`
	Context struct {
		Cluster string `json:"cluster"`
		User    string `json:"user"`
	} `json:"context"`
}

// WriteKubeconfig atomically writes a kubeconfig for kc to path with mode
// 0600, creating missing parent directories with mode 0755. The file is JSON,
// which is valid YAML and accepted by kubectl and client-go. It contains
// apiVersion v1, kind Config, one cluster (server and base64
// certificate-authority-data), one user (absolute client-certificate and
// client-key paths), one context named "<user>@<cluster>" and a
// current-context selecting it.
func WriteKubeconfig(path string, kc Kubeconfig) error {
	if kc.Server == "" {
		return fmt.Errorf("write kubeconfig %s: server must not be empty", path)
	}
	if block, _ := pem.Decode(kc.CAPEM); block == nil {
		return fmt.Errorf("write kubeconfig %s: ca data contains no PEM block", path)
	}
	if kc.ClientCertPath == "" || kc.ClientKeyPath == "" {
		return fmt.Errorf("write kubeconfig %s: client certificate and key paths must not be empty", path)
	}
	certPath, err := filepath.Abs(kc.ClientCertPath)
	if err != nil {
		return fmt.Errorf("write kubeconfig %s: client certificate path: %w", path, err)
	}
	keyPath, err := filepath.Abs(kc.ClientKeyPath)
	if err != nil {
		return fmt.Errorf("write kubeconfig %s: client key path: %w", path, err)
	}
	clusterName := kc.ClusterName
	if clusterName == "" {
		clusterName = DefaultClusterName
	}
	user := kc.User
	if user == "" {
		user = DefaultUser
	}
	contextName := user + "@" + clusterName

	var c kcCluster
	c.Name = clusterName
	c.Cluster.Server = kc.Server
	c.Cluster.CertificateAuthorityData = kc.CAPEM
	var u kcUser
	u.Name = user
	u.User.ClientCertificate = certPath
	u.User.ClientKey = keyPath
	var ctx kcContext
	ctx.Name = contextName
	ctx.Context.Cluster = clusterName
	ctx.Context.User = user

	data, err := json.MarshalIndent(kcFile{
		APIVersion:     "v1",
		Kind:           "Config",
		Clusters:       []kcCluster{c},
		Users:          []kcUser{u},
		Contexts:       []kcContext{ctx},
		CurrentContext: contextName,
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("write kubeconfig %s: marshal: %w", path, err)
	}
	data = append(data, '\n')
	if err := writeFileAtomic(path, data, modeKey); err != nil {
		return fmt.Errorf("write kubeconfig %s: %w", path, err)
	}
	return nil
}
