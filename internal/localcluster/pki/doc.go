// Package pki creates the certificates, keys and kubeconfigs a local
// Kubernetes cluster needs: a self-signed CA, serving and client certificates
// issued by it, the service-account signing key pair, and kubeconfigs that
// reference the client certificates. Certificates and keys come from
// kubeadm's pkiutil, files are written with client-go's certutil/keyutil
// (keys 0600, certificates 0644, parent directories 0755) and kubeconfigs with
// clientcmd (0600).
package pki
