// Package pki provides the small public-key infrastructure needed to run a
// local Kubernetes cluster: a self-signed certificate authority, server and
// client certificates issued by it, the service-account signing key pair, and
// kubeconfig files that reference those certificates.
//
// Everything is generated with the standard library only. CA and leaf keys are
// ECDSA P-256; the service-account key is RSA 2048, which kube-apiserver and
// kube-controller-manager accept for signing and verifying tokens.
//
// All files are written atomically (a temporary file in the destination
// directory is renamed into place), so a reader never observes a partially
// written certificate, key or kubeconfig. Private keys and kubeconfigs are
// written with mode 0600, certificates and public keys with 0644, and missing
// parent directories are created with mode 0755.
package pki
