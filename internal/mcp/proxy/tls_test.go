package proxy_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/mcp/proxy"
)

// selfSigned writes a certificate for 127.0.0.1 and its key, and returns
// their paths and a pool trusting it.
func selfSigned(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rotator proxy test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

// TestTLSListen serves off loopback (all interfaces) over TLS, with the
// client token it then requires.
func TestTLSListen(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "0s", time.Hour)
	up := newRawUpstream(t)
	certFile, keyFile, pool := selfSigned(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("tls-client-token-0a1b2c3d"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := proxy.New(w.src, []proxy.Upstream{{Name: "tls", Listen: "0.0.0.0:0", URL: up.URL, TLSCert: certFile, TLSKey: keyFile,
		ClientToken: "${file:" + tokenFile + "}", Headers: []proxy.Header{{Name: "Authorization", Template: "Bearer {api}"}}}},
		proxy.Options{Logger: w.log, Redactor: w.red})
	if err != nil {
		t.Fatal(err)
	}
	u := startProxy(t, p)
	if !strings.HasPrefix(u, "https://") {
		t.Fatalf("URL %s", u)
	}
	_, port, _ := net.SplitHostPort(strings.TrimSuffix(strings.TrimPrefix(u, "https://"), "/"))
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	for token, want := range map[string]int{"": http.StatusUnauthorized, "tls-client-token-0a1b2c3d": http.StatusOK} {
		req, _ := http.NewRequestWithContext(context.WithoutCancel(t.Context()), http.MethodPost, "https://127.0.0.1:"+port+"/", strings.NewReader("{}"))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("token %q: status %d, want %d", token, resp.StatusCode, want)
		}
	}
	if h := up.last(t); h.Get("Authorization") != "Bearer "+w.current(t, "api") {
		t.Error("the upstream did not get the credential")
	}
}
