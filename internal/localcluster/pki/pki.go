package pki

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

const (
	// clockSkew is subtracted from "now" to obtain NotBefore, so certificates
	// are accepted by components whose clocks lag slightly behind.
	clockSkew = time.Hour
	// caValidity is the lifetime of a CA created by NewCA.
	caValidity = 10 * 365 * 24 * time.Hour
	// DefaultValidity is the lifetime of an issued certificate when
	// CertSpec.Validity is zero.
	DefaultValidity = 365 * 24 * time.Hour

	pemTypeCertificate   = "CERTIFICATE"
	pemTypeECPrivateKey  = "EC PRIVATE KEY"
	pemTypePKCS8Key      = "PRIVATE KEY"
	pemTypeRSAPrivateKey = "RSA PRIVATE KEY"
	pemTypePublicKey     = "PUBLIC KEY"

	modeKey  os.FileMode = 0o600
	modeCert os.FileMode = 0o644
	modeDir  os.FileMode = 0o755
)

// CA is a certificate authority: a self-signed CA certificate together with
// its ECDSA private key. A CA is obtained from NewCA or LoadCA; the zero value
// is not usable. A CA is safe for concurrent use because its methods do not
// modify it.
type CA struct {
	cert    *x509.Certificate
	certPEM []byte
	key     *ecdsa.PrivateKey
}

// NewCA creates a new self-signed certificate authority with a fresh ECDSA
// P-256 key. The CA certificate has the given common name, is valid from one
// hour ago (to tolerate clock skew) for ten years, and may sign certificates
// and CRLs. commonName must not be empty.
func NewCA(commonName string) (*CA, error) {
	if commonName == "" {
		return nil, errors.New("new ca: common name must not be empty")
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("new ca %q: generate key: %w", commonName, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, fmt.Errorf("new ca %q: %w", commonName, err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              now.Add(caValidity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("new ca %q: create certificate: %w", commonName, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("new ca %q: parse certificate: %w", commonName, err)
	}
	return &CA{
		cert:    cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: pemTypeCertificate, Bytes: der}),
		key:     key,
	}, nil
}

// LoadCA reads a CA from a PEM certificate file and a PEM private key file,
// such as those written by CA.WriteFiles. The certificate must be a CA
// certificate, the key must be an ECDSA key ("EC PRIVATE KEY" or PKCS#8
// "PRIVATE KEY"), and the key must match the certificate's public key.
// Errors from reading the files wrap the underlying *fs.PathError.
func LoadCA(certPEMPath, keyPEMPath string) (*CA, error) {
	certPEM, err := os.ReadFile(certPEMPath)
	if err != nil {
		return nil, fmt.Errorf("load ca certificate %s: %w", certPEMPath, err)
	}
	keyPEM, err := os.ReadFile(keyPEMPath)
	if err != nil {
		return nil, fmt.Errorf("load ca key %s: %w", keyPEMPath, err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != pemTypeCertificate {
		return nil, fmt.Errorf("load ca certificate %s: no %s PEM block found", certPEMPath, pemTypeCertificate)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("load ca certificate %s: %w", certPEMPath, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("load ca certificate %s: certificate is not a CA", certPEMPath)
	}
	key, err := parseECPrivateKeyPEM(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load ca key %s: %w", keyPEMPath, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("load ca key %s: key does not match certificate %s", keyPEMPath, certPEMPath)
	}
	return &CA{
		cert:    cert,
		certPEM: pem.EncodeToMemory(&pem.Block{Type: pemTypeCertificate, Bytes: cert.Raw}),
		key:     key,
	}, nil
}

// parseECPrivateKeyPEM decodes the first PEM block of data as an ECDSA
// private key in SEC 1 or PKCS#8 form.
func parseECPrivateKeyPEM(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block found")
	}
	switch block.Type {
	case pemTypeECPrivateKey:
		return x509.ParseECPrivateKey(block.Bytes)
	case pemTypePKCS8Key:
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("unsupported private key type %T, want ECDSA", k)
		}
		return ec, nil
	default:
		return nil, fmt.Errorf("unsupported PEM block type %q", block.Type)
	}
}

// CertPEM returns the PEM encoding of the CA certificate. The caller may
// modify the returned slice; it is a copy.
func (ca *CA) CertPEM() []byte {
	return bytes.Clone(ca.certPEM)
}

// WriteFiles atomically writes the CA certificate (PEM, mode 0644) to certPath
// and the CA private key (PEM "EC PRIVATE KEY", mode 0600) to keyPath,
// creating missing parent directories with mode 0755. Existing files are
// replaced.
func (ca *CA) WriteFiles(certPath, keyPath string) error {
	keyPEM, err := encodeECKey(ca.key)
	if err != nil {
		return fmt.Errorf("write ca key %s: %w", keyPath, err)
	}
	if err := writeFileAtomic(keyPath, keyPEM, modeKey); err != nil {
		return fmt.Errorf("write ca key %s: %w", keyPath, err)
	}
	if err := writeFileAtomic(certPath, ca.certPEM, modeCert); err != nil {
		return fmt.Errorf("write ca certificate %s: %w", certPath, err)
	}
	return nil
}

// CertSpec describes a certificate to be issued by CA.Issue.
type CertSpec struct {
	// CommonName is the subject CN; for Kubernetes client certificates it
	// is the user name (e.g. "system:node:node-1"). It must not be empty.
	CommonName string
	// Organizations are the subject O values; for Kubernetes client
	// certificates they are the groups (e.g. "system:nodes").
	Organizations []string
	// DNSNames are the DNS subject alternative names.
	DNSNames []string
	// IPs are the IP address subject alternative names.
	IPs []net.IP
	// Server adds the ServerAuth extended key usage.
	Server bool
	// Client adds the ClientAuth extended key usage.
	Client bool
	// Validity is the certificate lifetime from now; zero means
	// DefaultValidity (one year). It must not be negative. NotAfter is
	// capped at the CA certificate's NotAfter.
	Validity time.Duration
}

// Issue creates a fresh ECDSA P-256 key and a certificate for it signed by the
// CA, and returns both PEM encoded (the key as "EC PRIVATE KEY"). The
// certificate has a random 128-bit serial number, NotBefore one hour in the
// past to tolerate clock skew, key usage DigitalSignature|KeyEncipherment, and
// the ServerAuth and/or ClientAuth extended key usage according to
// spec.Server and spec.Client, at least one of which must be set.
func (ca *CA) Issue(spec CertSpec) (certPEM, keyPEM []byte, err error) {
	if spec.CommonName == "" {
		return nil, nil, errors.New("issue certificate: common name must not be empty")
	}
	if !spec.Server && !spec.Client {
		return nil, nil, fmt.Errorf("issue certificate %q: neither server nor client usage requested", spec.CommonName)
	}
	if spec.Validity < 0 {
		return nil, nil, fmt.Errorf("issue certificate %q: negative validity %v", spec.CommonName, spec.Validity)
	}
	validity := spec.Validity
	if validity == 0 {
		validity = DefaultValidity
	}
	var extUsage []x509.ExtKeyUsage
	if spec.Server {
		extUsage = append(extUsage, x509.ExtKeyUsageServerAuth)
	}
	if spec.Client {
		extUsage = append(extUsage, x509.ExtKeyUsageClientAuth)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate %q: generate key: %w", spec.CommonName, err)
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate %q: %w", spec.CommonName, err)
	}
	now := time.Now()
	notAfter := now.Add(validity)
	if notAfter.After(ca.cert.NotAfter) {
		notAfter = ca.cert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject: pkix.Name{
			CommonName:   spec.CommonName,
			Organization: append([]string(nil), spec.Organizations...),
		},
		DNSNames:              append([]string(nil), spec.DNSNames...),
		IPAddresses:           append([]net.IP(nil), spec.IPs...),
		NotBefore:             now.Add(-clockSkew),
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           extUsage,
		BasicConstraintsValid: true,
		IsCA:                  false,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate %q: create certificate: %w", spec.CommonName, err)
	}
	keyPEM, err = encodeECKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("issue certificate %q: %w", spec.CommonName, err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: pemTypeCertificate, Bytes: der})
	return certPEM, keyPEM, nil
}

// IssueFiles issues a certificate as Issue does and atomically writes the
// certificate (mode 0644) to certPath and the private key (mode 0600) to
// keyPath, creating missing parent directories with mode 0755. The key is
// written first, so a certificate file never refers to a key that was not
// written.
func (ca *CA) IssueFiles(spec CertSpec, certPath, keyPath string) error {
	certPEM, keyPEM, err := ca.Issue(spec)
	if err != nil {
		return err
	}
	if err := writeFileAtomic(keyPath, keyPEM, modeKey); err != nil {
		return fmt.Errorf("write key %s: %w", keyPath, err)
	}
	if err := writeFileAtomic(certPath, certPEM, modeCert); err != nil {
		return fmt.Errorf("write certificate %s: %w", certPath, err)
	}
	return nil
}

// WriteServiceAccountKey generates an RSA 2048 key pair for signing
// service-account tokens and atomically writes the private key (PEM
// "RSA PRIVATE KEY", PKCS#1, mode 0600) to privPath and the public key (PEM
// "PUBLIC KEY", PKIX, mode 0644) to pubPath, creating missing parent
// directories with mode 0755. The private key file suits kube-apiserver's
// --service-account-signing-key-file and kube-controller-manager's
// --service-account-private-key-file; the public key file suits
// kube-apiserver's --service-account-key-file.
func WriteServiceAccountKey(privPath, pubPath string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return fmt.Errorf("generate service account key: %w", err)
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return fmt.Errorf("marshal service account public key: %w", err)
	}
	privPEM := pem.EncodeToMemory(&pem.Block{Type: pemTypeRSAPrivateKey, Bytes: x509.MarshalPKCS1PrivateKey(key)})
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: pemTypePublicKey, Bytes: pubDER})
	if err := writeFileAtomic(privPath, privPEM, modeKey); err != nil {
		return fmt.Errorf("write service account key %s: %w", privPath, err)
	}
	if err := writeFileAtomic(pubPath, pubPEM, modeCert); err != nil {
		return fmt.Errorf("write service account public key %s: %w", pubPath, err)
	}
	return nil
}

// encodeECKey returns the SEC 1 PEM ("EC PRIVATE KEY") encoding of key.
func encodeECKey(key *ecdsa.PrivateKey) ([]byte, error) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("marshal key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: pemTypeECPrivateKey, Bytes: der}), nil
}

// randomSerial returns a uniformly random, non-zero serial number of at most
// 128 bits.
func randomSerial() (*big.Int, error) {
	limit := new(big.Int).Lsh(big.NewInt(1), 128)
	for {
		n, err := rand.Int(rand.Reader, limit)
		if err != nil {
			return nil, fmt.Errorf("generate serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// writeFileAtomic writes data to path with exactly the given mode by writing a
// temporary file in the same directory and renaming it over path. Missing
// parent directories are created with mode 0755. On failure the temporary
// file is removed and path is left untouched.
func writeFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, modeDir); err != nil {
		return fmt.Errorf("create directory %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("create temporary file: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	// Chmod is not subject to the umask, so the final mode is exact.
	if err := f.Chmod(mode); err != nil {
		return fmt.Errorf("chmod temporary file %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("write temporary file %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync temporary file %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close temporary file %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename temporary file %s: %w", tmp, err)
	}
	return nil
}
