package pki

import (
	"bytes"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func newTestCA(t *testing.T) *CA {
	t.Helper()
	ca, err := NewCA("test-ca")
	if err != nil {
		t.Fatalf("NewCA: %v", err)
	}
	return ca
}

func caPool(t *testing.T, ca *CA) *x509.CertPool {
	t.Helper()
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca.CertPEM()) {
		t.Fatal("AppendCertsFromPEM: no certificate added")
	}
	return pool
}

func parseCertPEM(t *testing.T, data []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("no CERTIFICATE PEM block in %q", data)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatalf("ParseCertificate: %v", err)
	}
	return cert
}

func assertMode(t *testing.T, path string, want os.FileMode) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	if got := fi.Mode().Perm(); got != want {
		t.Errorf("mode of %s = %v, want %v", path, got, want)
	}
}

// assertNoTempFiles checks that atomic writes left nothing behind in dir.
func assertNoTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read dir %s: %v", dir, err)
	}
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("leftover temporary file %s in %s", e.Name(), dir)
		}
	}
}

func TestNewCA(t *testing.T) {
	ca := newTestCA(t)
	cert := parseCertPEM(t, ca.CertPEM())
	if !cert.IsCA || !cert.BasicConstraintsValid {
		t.Errorf("CA cert IsCA=%v BasicConstraintsValid=%v, want both true", cert.IsCA, cert.BasicConstraintsValid)
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA cert KeyUsage %v lacks CertSign", cert.KeyUsage)
	}
	if cert.Subject.CommonName != "test-ca" {
		t.Errorf("CA CN = %q, want test-ca", cert.Subject.CommonName)
	}
	if err := cert.CheckSignatureFrom(cert); err != nil {
		t.Errorf("CA cert is not self-signed: %v", err)
	}
	// CertPEM returns a copy.
	p := ca.CertPEM()
	p[0] = 'X'
	if ca.CertPEM()[0] == 'X' {
		t.Error("CertPEM returned internal slice")
	}
	if _, err := NewCA(""); err == nil {
		t.Error("NewCA(\"\") succeeded, want error")
	}
}

func TestIssueServerCert(t *testing.T) {
	ca := newTestCA(t)
	before := time.Now()
	certPEM, keyPEM, err := ca.Issue(CertSpec{
		CommonName: "kube-apiserver",
		DNSNames:   []string{"localhost", "kubernetes.default.svc"},
		IPs:        []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("10.96.0.1")},
		Server:     true,
	})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	if _, err := tls.X509KeyPair(certPEM, keyPEM); err != nil {
		t.Fatalf("X509KeyPair: %v", err)
	}
	cert := parseCertPEM(t, certPEM)
	pool := caPool(t, ca)
	for _, name := range []string{"localhost", "kubernetes.default.svc", "127.0.0.1", "10.96.0.1"} {
		_, err := cert.Verify(x509.VerifyOptions{
			DNSName:   name,
			Roots:     pool,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		})
		if err != nil {
			t.Errorf("verify server cert for %q: %v", name, err)
		}
	}
	if _, err := cert.Verify(x509.VerifyOptions{DNSName: "other.example", Roots: pool}); err == nil {
		t.Error("server cert verified for a name not in its SANs")
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:     pool,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err == nil {
		t.Error("server-only cert verified for ClientAuth")
	}
	if cert.IsCA {
		t.Error("leaf cert is a CA")
	}
	if want := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment; cert.KeyUsage != want {
		t.Errorf("KeyUsage = %v, want %v", cert.KeyUsage, want)
	}
	if n := cert.SerialNumber.BitLen(); n == 0 || n > 128 {
		t.Errorf("serial bit length = %d, want 1..128", n)
	}
	if d := before.Add(-time.Hour).Sub(cert.NotBefore); d > 2*time.Second || d < -time.Minute {
		t.Errorf("NotBefore = %v, want about %v", cert.NotBefore, before.Add(-time.Hour))
	}
	if d := before.Add(DefaultValidity).Sub(cert.NotAfter); d > 2*time.Second || d < -time.Minute {
		t.Errorf("NotAfter = %v, want about %v", cert.NotAfter, before.Add(DefaultValidity))
	}
}

func TestIssueClientCert(t *testing.T) {
	ca := newTestCA(t)
	certPEM, _, err := ca.Issue(CertSpec{
		CommonName:    "system:node:node-1",
		Organizations: []string{"system:nodes"},
		Client:        true,
		Validity:      2 * time.Hour,
	})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	cert := parseCertPEM(t, certPEM)
	pool := caPool(t, ca)
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:     pool,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Errorf("verify client cert: %v", err)
	}
	if _, err := cert.Verify(x509.VerifyOptions{
		Roots:     pool,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err == nil {
		t.Error("client-only cert verified for ServerAuth")
	}
	if cert.Subject.CommonName != "system:node:node-1" {
		t.Errorf("CN = %q, want system:node:node-1", cert.Subject.CommonName)
	}
	if !slices.Equal(cert.Subject.Organization, []string{"system:nodes"}) {
		t.Errorf("O = %q, want [system:nodes]", cert.Subject.Organization)
	}
	if got := cert.NotAfter.Sub(cert.NotBefore); got < 3*time.Hour-time.Minute || got > 3*time.Hour+time.Minute {
		t.Errorf("NotAfter-NotBefore = %v, want about 3h (1h skew + 2h validity)", got)
	}
}

func TestIssueServerAndClient(t *testing.T) {
	ca := newTestCA(t)
	certPEM, _, err := ca.Issue(CertSpec{
		CommonName: "system:node:node-1",
		DNSNames:   []string{"node-1"},
		Server:     true,
		Client:     true,
	})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	cert := parseCertPEM(t, certPEM)
	pool := caPool(t, ca)
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			t.Errorf("verify for usage %v: %v", u, err)
		}
	}
	// A different CA must not verify it.
	if _, err := cert.Verify(x509.VerifyOptions{Roots: caPool(t, newTestCA(t))}); err == nil {
		t.Error("cert verified against an unrelated CA")
	}
}

func TestIssueInvalidSpec(t *testing.T) {
	ca := newTestCA(t)
	for name, spec := range map[string]CertSpec{
		"no common name":    {Server: true},
		"no usage":          {CommonName: "x"},
		"negative validity": {CommonName: "x", Client: true, Validity: -time.Second},
	} {
		if _, _, err := ca.Issue(spec); err == nil {
			t.Errorf("%s: Issue succeeded, want error", name)
		}
	}
}

func TestIssueCapsAtCANotAfter(t *testing.T) {
	ca := newTestCA(t)
	certPEM, _, err := ca.Issue(CertSpec{CommonName: "x", Client: true, Validity: 100 * 365 * 24 * time.Hour})
	if err != nil {
		t.Fatalf("Issue: %v", err)
	}
	caCert := parseCertPEM(t, ca.CertPEM())
	if cert := parseCertPEM(t, certPEM); cert.NotAfter.After(caCert.NotAfter) {
		t.Errorf("leaf NotAfter %v is after CA NotAfter %v", cert.NotAfter, caCert.NotAfter)
	}
}

func TestLoadCARoundTrip(t *testing.T) {
	dir := t.TempDir()
	certPath := filepath.Join(dir, "a", "b", "ca.crt")
	keyPath := filepath.Join(dir, "a", "b", "ca.key")
	ca := newTestCA(t)
	if err := ca.WriteFiles(certPath, keyPath); err != nil {
		t.Fatalf("WriteFiles: %v", err)
	}
	assertMode(t, keyPath, 0o600)
	assertMode(t, certPath, 0o644)
	assertMode(t, filepath.Dir(certPath), 0o755&^currentUmask(t))
	assertNoTempFiles(t, filepath.Dir(certPath))

	loaded, err := LoadCA(certPath, keyPath)
	if err != nil {
		t.Fatalf("LoadCA: %v", err)
	}
	if !bytes.Equal(loaded.CertPEM(), ca.CertPEM()) {
		t.Error("loaded CA certificate differs from the written one")
	}
	if !loaded.key.Equal(ca.key) {
		t.Error("loaded CA key differs from the written one")
	}
	// A cert issued by the loaded CA verifies against the original CA.
	certPEM, _, err := loaded.Issue(CertSpec{CommonName: "admin", Organizations: []string{"system:masters"}, Client: true})
	if err != nil {
		t.Fatalf("Issue from loaded CA: %v", err)
	}
	if _, err := parseCertPEM(t, certPEM).Verify(x509.VerifyOptions{
		Roots:     caPool(t, ca),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Errorf("verify cert from loaded CA: %v", err)
	}

	// Overwriting existing files works and stays atomic.
	if err := newTestCA(t).WriteFiles(certPath, keyPath); err != nil {
		t.Fatalf("WriteFiles overwrite: %v", err)
	}
	assertMode(t, keyPath, 0o600)
	assertNoTempFiles(t, filepath.Dir(certPath))
}

func TestLoadCAErrors(t *testing.T) {
	dir := t.TempDir()
	ca1, ca2 := newTestCA(t), newTestCA(t)
	c1, k1 := filepath.Join(dir, "1.crt"), filepath.Join(dir, "1.key")
	c2, k2 := filepath.Join(dir, "2.crt"), filepath.Join(dir, "2.key")
	if err := ca1.WriteFiles(c1, k1); err != nil {
		t.Fatal(err)
	}
	if err := ca2.WriteFiles(c2, k2); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(c1, k2); err == nil {
		t.Error("LoadCA with mismatched key succeeded")
	}
	if _, err := LoadCA(filepath.Join(dir, "missing.crt"), k1); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("LoadCA missing cert: err = %v, want fs.ErrNotExist", err)
	}
	if _, err := LoadCA(k1, k1); err == nil {
		t.Error("LoadCA with a key as certificate succeeded")
	}

	// A leaf certificate is not a CA.
	leafCert, leafKey := filepath.Join(dir, "leaf.crt"), filepath.Join(dir, "leaf.key")
	if err := ca1.IssueFiles(CertSpec{CommonName: "leaf", Server: true}, leafCert, leafKey); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCA(leafCert, leafKey); err == nil {
		t.Error("LoadCA with a leaf certificate succeeded")
	}
}

func TestIssueFiles(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	certPath := filepath.Join(dir, "kubelet", "node-1.crt")
	keyPath := filepath.Join(dir, "kubelet", "node-1.key")
	spec := CertSpec{CommonName: "system:node:node-1", Organizations: []string{"system:nodes"}, Client: true}
	if err := ca.IssueFiles(spec, certPath, keyPath); err != nil {
		t.Fatalf("IssueFiles: %v", err)
	}
	assertMode(t, keyPath, 0o600)
	assertMode(t, certPath, 0o644)
	assertNoTempFiles(t, filepath.Dir(certPath))
	pair, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		t.Fatalf("LoadX509KeyPair: %v", err)
	}
	if _, err := pair.Leaf.Verify(x509.VerifyOptions{
		Roots:     caPool(t, ca),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}); err != nil {
		t.Errorf("verify issued file: %v", err)
	}
	if err := ca.IssueFiles(CertSpec{}, certPath, keyPath); err == nil {
		t.Error("IssueFiles with invalid spec succeeded")
	}
}

func TestWriteServiceAccountKey(t *testing.T) {
	dir := t.TempDir()
	priv := filepath.Join(dir, "sa", "sa.key")
	pub := filepath.Join(dir, "sa", "sa.pub")
	if err := WriteServiceAccountKey(priv, pub); err != nil {
		t.Fatalf("WriteServiceAccountKey: %v", err)
	}
	assertMode(t, priv, 0o600)
	assertMode(t, pub, 0o644)
	assertNoTempFiles(t, filepath.Dir(priv))

	privPEM, err := os.ReadFile(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(privPEM)
	if block == nil || block.Type != "RSA PRIVATE KEY" {
		t.Fatalf("private key PEM block = %v, want RSA PRIVATE KEY", block)
	}
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		t.Fatalf("ParsePKCS1PrivateKey: %v", err)
	}
	if key.N.BitLen() != 2048 {
		t.Errorf("RSA key size = %d, want 2048", key.N.BitLen())
	}

	pubPEM, err := os.ReadFile(pub)
	if err != nil {
		t.Fatal(err)
	}
	block, _ = pem.Decode(pubPEM)
	if block == nil || block.Type != "PUBLIC KEY" {
		t.Fatalf("public key PEM block = %v, want PUBLIC KEY", block)
	}
	pk, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatalf("ParsePKIXPublicKey: %v", err)
	}
	rpk, ok := pk.(*rsa.PublicKey)
	if !ok {
		t.Fatalf("public key type = %T, want *rsa.PublicKey", pk)
	}
	if !rpk.Equal(&key.PublicKey) {
		t.Error("public key does not match private key")
	}
}

func TestWriteKubeconfig(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	ca := newTestCA(t)
	path := filepath.Join(dir, "kubeconfigs", "admin.kubeconfig")
	kc := Kubeconfig{
		Server:         "https://127.0.0.1:6443",
		CAPEM:          ca.CertPEM(),
		ClientCertPath: "pki/admin.crt", // relative: must become absolute
		ClientKeyPath:  filepath.Join(dir, "pki", "admin.key"),
		User:           "admin",
		ClusterName:    "local-test",
	}
	if err := WriteKubeconfig(path, kc); err != nil {
		t.Fatalf("WriteKubeconfig: %v", err)
	}
	assertMode(t, path, 0o600)
	assertNoTempFiles(t, filepath.Dir(path))

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var cfg struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Clusters   []struct {
			Name    string `json:"name"`
			Cluster struct {
				Server                   string `json:"server"`
				CertificateAuthorityData string `json:"certificate-authority-data"`
			} `json:"cluster"`
		} `json:"clusters"`
		Users []struct {
			Name string `json:"name"`
			User struct {
				ClientCertificate string `json:"client-certificate"`
				ClientKey         string `json:"client-key"`
			} `json:"user"`
		} `json:"users"`
		Contexts []struct {
			Name    string `json:"name"`
			Context struct {
				Cluster string `json:"cluster"`
				User    string `json:"user"`
			} `json:"context"`
		} `json:"contexts"`
		CurrentContext string `json:"current-context"`
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatalf("kubeconfig is not valid JSON: %v\n%s", err, data)
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		t.Fatalf("unmarshal kubeconfig: %v", err)
	}
	if cfg.APIVersion != "v1" || cfg.Kind != "Config" {
		t.Errorf("apiVersion/kind = %q/%q, want v1/Config", cfg.APIVersion, cfg.Kind)
	}
	if len(cfg.Clusters) != 1 || len(cfg.Users) != 1 || len(cfg.Contexts) != 1 {
		t.Fatalf("got %d clusters, %d users, %d contexts; want 1 each", len(cfg.Clusters), len(cfg.Users), len(cfg.Contexts))
	}
	c, u, x := cfg.Clusters[0], cfg.Users[0], cfg.Contexts[0]
	if c.Name != "local-test" || c.Cluster.Server != kc.Server {
		t.Errorf("cluster = %+v", c)
	}
	caData, err := base64.StdEncoding.DecodeString(c.Cluster.CertificateAuthorityData)
	if err != nil {
		t.Fatalf("decode certificate-authority-data: %v", err)
	}
	if !bytes.Equal(caData, ca.CertPEM()) {
		t.Error("certificate-authority-data does not decode to the CA PEM")
	}
	if u.Name != "admin" {
		t.Errorf("user name = %q, want admin", u.Name)
	}
	if want := filepath.Join(dir, "pki", "admin.crt"); u.User.ClientCertificate != want {
		t.Errorf("client-certificate = %q, want %q", u.User.ClientCertificate, want)
	}
	if want := filepath.Join(dir, "pki", "admin.key"); u.User.ClientKey != want {
		t.Errorf("client-key = %q, want %q", u.User.ClientKey, want)
	}
	if x.Context.Cluster != "local-test" || x.Context.User != "admin" {
		t.Errorf("context = %+v", x)
	}
	if cfg.CurrentContext != x.Name || x.Name == "" {
		t.Errorf("current-context = %q, context name = %q", cfg.CurrentContext, x.Name)
	}
}

func TestWriteKubeconfigDefaultsAndErrors(t *testing.T) {
	dir := t.TempDir()
	ca := newTestCA(t)
	path := filepath.Join(dir, "kc")
	good := Kubeconfig{
		Server:         "https://127.0.0.1:6443",
		CAPEM:          ca.CertPEM(),
		ClientCertPath: "/c.crt",
		ClientKeyPath:  "/c.key",
	}
	if err := WriteKubeconfig(path, good); err != nil {
		t.Fatalf("WriteKubeconfig: %v", err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"name": "` + DefaultClusterName + `"`, `"name": "` + DefaultUser + `"`} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("kubeconfig lacks %s:\n%s", want, data)
		}
	}

	bad := map[string]func(*Kubeconfig){
		"no server": func(k *Kubeconfig) { k.Server = "" },
		"no ca":     func(k *Kubeconfig) { k.CAPEM = nil },
		"bad ca":    func(k *Kubeconfig) { k.CAPEM = []byte("not pem") },
		"no cert":   func(k *Kubeconfig) { k.ClientCertPath = "" },
		"no key":    func(k *Kubeconfig) { k.ClientKeyPath = "" },
	}
	for name, mutate := range bad {
		kc := good
		mutate(&kc)
		if err := WriteKubeconfig(filepath.Join(dir, "bad"), kc); err == nil {
			t.Errorf("%s: WriteKubeconfig succeeded, want error", name)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "bad")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("invalid kubeconfig was written: stat err = %v", err)
	}
}

// currentUmask returns the process umask by creating a directory with mode
// 0777 and reading back its permissions.
func currentUmask(t *testing.T) os.FileMode {
	t.Helper()
	d := filepath.Join(t.TempDir(), "umask")
	if err := os.Mkdir(d, 0o777); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(d)
	if err != nil {
		t.Fatal(err)
	}
	return 0o777 &^ fi.Mode().Perm()
}
