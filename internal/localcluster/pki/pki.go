package pki

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"time"

	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
	kubeadmapi "k8s.io/kubernetes/cmd/kubeadm/app/apis/kubeadm"
	"k8s.io/kubernetes/cmd/kubeadm/app/util/pkiutil"
)

// clockSkew backdates the CA, and so every certificate it issues, so that
// components whose clocks lag slightly still accept them.
const clockSkew = time.Hour

// CA is a self-signed certificate authority and its private key. Obtain one
// from NewCA; the zero value is not usable. Its methods do not modify it, so a
// CA is safe for concurrent use.
type CA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// NewCA returns a new CA named commonName with a fresh ECDSA P-256 key, valid
// from one hour ago for ten years. commonName must not be empty.
func NewCA(commonName string) (*CA, error) {
	if commonName == "" {
		return nil, errors.New("new ca: common name must not be empty")
	}
	cert, key, err := pkiutil.NewCertificateAuthority(&pkiutil.CertConfig{
		Config:              certutil.Config{CommonName: commonName, NotBefore: time.Now().Add(-clockSkew)},
		EncryptionAlgorithm: kubeadmapi.EncryptionAlgorithmECDSAP256,
	})
	if err != nil {
		return nil, fmt.Errorf("new ca %q: %w", commonName, err)
	}
	return &CA{cert: cert, key: key}, nil
}

// CertPEM returns a fresh PEM encoding of the CA certificate.
func (ca *CA) CertPEM() []byte { return pkiutil.EncodeCertPEM(ca.cert) }

// WriteFiles writes the CA certificate (PEM, mode 0644) to certPath and its
// private key (PEM, mode 0600) to keyPath, replacing existing files and
// creating missing parent directories.
func (ca *CA) WriteFiles(certPath, keyPath string) error {
	return writeCertAndKey("ca", ca.cert, ca.key, certPath, keyPath)
}

// CertSpec describes a certificate for CA.IssueFiles.
type CertSpec struct {
	// CommonName is the subject CN, which Kubernetes takes as the user name
	// of a client certificate. It must not be empty.
	CommonName string
	// Organizations are the subject O values, which Kubernetes takes as the
	// groups of a client certificate.
	Organizations []string
	// DNSNames are the DNS subject alternative names of a serving
	// certificate.
	DNSNames []string
	// IPs are the IP subject alternative names of a serving certificate.
	IPs []net.IP
	// Server and Client select the ServerAuth and ClientAuth extended key
	// usages; at least one must be set.
	Server, Client bool
}

// IssueFiles issues a one-year certificate described by spec for a fresh
// ECDSA P-256 key, signed by ca, and writes the certificate (PEM, mode 0644)
// to certPath and the key (PEM, mode 0600) to keyPath, replacing existing
// files and creating missing parent directories.
func (ca *CA) IssueFiles(spec CertSpec, certPath, keyPath string) error {
	var usages []x509.ExtKeyUsage
	if spec.Server {
		usages = append(usages, x509.ExtKeyUsageServerAuth)
	}
	if spec.Client {
		usages = append(usages, x509.ExtKeyUsageClientAuth)
	}
	cert, key, err := pkiutil.NewCertAndKey(ca.cert, ca.key, &pkiutil.CertConfig{
		Config: certutil.Config{
			CommonName:   spec.CommonName,
			Organization: spec.Organizations,
			AltNames:     certutil.AltNames{DNSNames: spec.DNSNames, IPs: spec.IPs},
			Usages:       usages,
		},
		EncryptionAlgorithm: kubeadmapi.EncryptionAlgorithmECDSAP256,
	})
	if err != nil {
		return fmt.Errorf("issue certificate %q: %w", spec.CommonName, err)
	}
	return writeCertAndKey(fmt.Sprintf("certificate %q", spec.CommonName), cert, key, certPath, keyPath)
}

// WriteServiceAccountKey generates an RSA 2048 key pair for signing
// service-account tokens and writes the private key (PEM "RSA PRIVATE KEY",
// for --service-account-signing-key-file and
// --service-account-private-key-file) to privPath and the public key (PEM
// "PUBLIC KEY", for --service-account-key-file) to pubPath, both mode 0600,
// replacing existing files and creating missing parent directories.
func WriteServiceAccountKey(privPath, pubPath string) error {
	key, err := pkiutil.NewPrivateKey(kubeadmapi.EncryptionAlgorithmRSA2048)
	if err != nil {
		return fmt.Errorf("generate service account key: %w", err)
	}
	if err := writeKey("service account key", key, privPath); err != nil {
		return err
	}
	pubPEM, err := pkiutil.EncodePublicKeyPEM(key.Public())
	if err != nil {
		return fmt.Errorf("encode service account public key: %w", err)
	}
	if err := keyutil.WriteKey(pubPath, pubPEM); err != nil {
		return fmt.Errorf("write service account public key: %w", err)
	}
	return nil
}

// writeCertAndKey writes key, then cert, so a certificate file never refers
// to a key that was not written; what names them in errors.
func writeCertAndKey(what string, cert *x509.Certificate, key crypto.Signer, certPath, keyPath string) error {
	if err := writeKey(what+" key", key, keyPath); err != nil {
		return err
	}
	if err := certutil.WriteCert(certPath, pkiutil.EncodeCertPEM(cert)); err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	return nil
}

// writeKey writes key PEM-encoded to path with mode 0600; what names it in
// errors.
func writeKey(what string, key crypto.Signer, path string) error {
	data, err := keyutil.MarshalPrivateKeyToPEM(key)
	if err != nil {
		return fmt.Errorf("encode %s: %w", what, err)
	}
	if err := keyutil.WriteKey(path, data); err != nil {
		return fmt.Errorf("write %s: %w", what, err)
	}
	return nil
}
