package pki

import (
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	certutil "k8s.io/client-go/util/cert"
	"k8s.io/client-go/util/keyutil"
)

// TestPKI issues the certificates the local cluster uses into a fresh,
// not-yet-existing directory and checks what the control plane relies on.
func TestPKI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	path := func(name string) string { return filepath.Join(dir, "pki", name) }

	ca, err := NewCA("test-ca")
	if err != nil {
		t.Fatal(err)
	}
	if err := ca.WriteFiles(path("ca.crt"), path("ca.key")); err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueFiles(CertSpec{
		CommonName: "kube-apiserver",
		DNSNames:   []string{"localhost", "kubernetes.default.svc"},
		IPs:        []net.IP{net.IPv4(127, 0, 0, 1), net.ParseIP("10.96.0.1")},
		Server:     true,
	}, path("apiserver.crt"), path("apiserver.key")); err != nil {
		t.Fatal(err)
	}
	if err := ca.IssueFiles(CertSpec{CommonName: "system:node:n1", Organizations: []string{"system:nodes"}, Client: true},
		path("n1.crt"), path("n1.key")); err != nil {
		t.Fatal(err)
	}
	if err := WriteServiceAccountKey(path("sa.key"), path("sa.pub")); err != nil {
		t.Fatal(err)
	}

	roots, err := certutil.NewPool(path("ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	// verify loads the certificate at name, checks it chains to the CA for
	// usage (and dnsName, if set), and checks it does not for the other usage.
	verify := func(name string, usage, wrong x509.ExtKeyUsage, dnsName string) *x509.Certificate {
		t.Helper()
		certs, err := certutil.CertsFromFile(path(name))
		if err != nil {
			t.Fatal(err)
		}
		opts := x509.VerifyOptions{Roots: roots, DNSName: dnsName, KeyUsages: []x509.ExtKeyUsage{usage}}
		if _, err := certs[0].Verify(opts); err != nil {
			t.Errorf("%s: verify for %v %q: %v", name, usage, dnsName, err)
		}
		opts.KeyUsages = []x509.ExtKeyUsage{wrong}
		if _, err := certs[0].Verify(opts); err == nil {
			t.Errorf("%s: verified for unrequested usage %v", name, wrong)
		}
		return certs[0]
	}

	t.Run("serving certificate", func(t *testing.T) {
		for _, san := range []string{"localhost", "kubernetes.default.svc", "127.0.0.1", "10.96.0.1"} {
			verify("apiserver.crt", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth, san)
		}
		cert := verify("apiserver.crt", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth, "")
		if err := cert.VerifyHostname("other.example"); err == nil {
			t.Error("serving certificate valid for a name not in its SANs")
		}
	})

	t.Run("client certificate", func(t *testing.T) {
		cert := verify("n1.crt", x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth, "")
		if cn, o := cert.Subject.CommonName, cert.Subject.Organization; cn != "system:node:n1" || !slices.Equal(o, []string{"system:nodes"}) {
			t.Errorf("subject CN=%q O=%q, want system:node:n1 [system:nodes]", cn, o)
		}
	})

	t.Run("service account key pair", func(t *testing.T) {
		priv, err := keyutil.PrivateKeyFromFile(path("sa.key"))
		if err != nil {
			t.Fatal(err)
		}
		pubs, err := keyutil.PublicKeysFromFile(path("sa.pub"))
		if err != nil {
			t.Fatal(err)
		}
		if key, ok := priv.(*rsa.PrivateKey); !ok || !key.PublicKey.Equal(pubs[0]) {
			t.Errorf("sa.key is %T and must be the RSA key matching sa.pub", priv)
		}
	})

	t.Run("kubeconfig authenticates over TLS", func(t *testing.T) {
		serving, err := tls.LoadX509KeyPair(path("apiserver.crt"), path("apiserver.key"))
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, r.TLS.PeerCertificates[0].Subject.CommonName)
		}))
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{serving}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: roots}
		srv.StartTLS()
		defer srv.Close()

		kubeconfig := filepath.Join(dir, "config", "n1.kubeconfig")
		if err := WriteKubeconfig(kubeconfig, Kubeconfig{
			Server: srv.URL, CAPEM: ca.CertPEM(), ClusterName: "c", User: "n1",
			ClientCertPath: path("n1.crt"), ClientKeyPath: path("n1.key"),
		}); err != nil {
			t.Fatal(err)
		}
		loaded, err := clientcmd.LoadFromFile(kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		if user := loaded.AuthInfos[loaded.Contexts[loaded.CurrentContext].AuthInfo]; user.ClientCertificate != path("n1.crt") || user.ClientKey != path("n1.key") {
			t.Errorf("kubeconfig user references %q, %q; want the n1 certificate and key files", user.ClientCertificate, user.ClientKey)
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		client, err := rest.HTTPClientFor(cfg)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Get(cfg.Host)
		if err != nil {
			t.Fatalf("TLS request with kubeconfig credentials: %v", err)
		}
		defer resp.Body.Close()
		if body, _ := io.ReadAll(resp.Body); string(body) != "system:node:n1" {
			t.Errorf("server saw client %q, want system:node:n1", body)
		}
	})

	t.Run("secret files are 0600", func(t *testing.T) {
		for _, p := range []string{path("ca.key"), path("apiserver.key"), path("n1.key"), path("sa.key"), filepath.Join(dir, "config", "n1.kubeconfig")} {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: mode %v, want 0600", p, fi.Mode().Perm())
			}
		}
	})
}
