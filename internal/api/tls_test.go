package api_test

import (
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
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rotatorhq/rotator/internal/api"
	"github.com/rotatorhq/rotator/internal/apitoken"
	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/delivery/deliverytest"
	"github.com/rotatorhq/rotator/internal/secret"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and its key.
func writeCert(t *testing.T, dir string) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "rotator test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func TestTLS(t *testing.T) {
	t.Parallel()
	b := newBundle(t, "sqlite", nil)
	dir := t.TempDir()
	certFile, keyFile, pool := writeCert(t, dir)
	cfg, err := api.LoadTLS(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewUnstartedServer(b.srv.TCPHandler())
	ts.TLS = cfg
	ts.StartTLS()
	defer ts.Close()
	tok, err := b.tokens.Create(t.Context(), apitoken.CreateRequest{Scopes: []string{"consume:" + deliverytest.CredA}, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}}
	defer client.CloseIdleConnections()
	src, err := delivery.NewAPI(delivery.APIOptions{URL: ts.URL, Token: secret.NewString(tok.Token), Client: client})
	if err != nil {
		t.Fatal(err)
	}
	cur, err := src.Read(t.Context(), delivery.ReadRequest{CredentialID: deliverytest.CredA})
	if err != nil || cur.Value.RevealString() != b.f.Value(t, deliverytest.CredA) {
		t.Fatalf("read over TLS: version %q, %v", cur.VersionID, err)
	}

	// Bad files: the error names them and holds no key material.
	keyPEM, _ := os.ReadFile(keyFile)
	for _, files := range [][2]string{{certFile, filepath.Join(dir, "missing.pem")}, {keyFile, certFile}, {"", keyFile}} {
		_, err := api.LoadTLS(files[0], files[1])
		if err == nil || strings.Contains(err.Error(), string(keyPEM[30:60])) {
			t.Errorf("LoadTLS(%q, %q) = %v; want an error without key material", files[0], files[1], err)
		}
	}
}

func TestAPISourceRefusesPlaintextOffLoopback(t *testing.T) {
	t.Parallel()
	tok := secret.NewString("rtrtok_x")
	for url, ok := range map[string]bool{
		"http://127.0.0.1:8080":      true,
		"http://localhost:8080":      true,
		"http://[::1]:8080":          true,
		"https://rotator.example":    true,
		"http://rotator.example":     false,
		"http://10.0.0.5:8080":       false,
		"ftp://rotator.example":      false,
		"rotator.example:8080/value": false,
	} {
		_, err := delivery.NewAPI(delivery.APIOptions{URL: url, Token: tok})
		if (err == nil) != ok {
			t.Errorf("NewAPI(%s) error %v; want ok=%v", url, err, ok)
		}
	}
	if _, err := delivery.NewAPI(delivery.APIOptions{URL: "https://rotator.example"}); err == nil {
		t.Error("NewAPI over TCP without a token succeeded")
	}
	if _, err := delivery.NewAPI(delivery.APIOptions{Socket: "/run/x.sock", Token: tok}); err == nil {
		t.Error("NewAPI over the socket with a token succeeded")
	}
	for addr, want := range map[string]bool{"127.0.0.1:8080": true, "[::1]:1": true, "localhost:80": true, ":8080": false, "0.0.0.0:8080": false, "10.1.2.3:80": false} {
		if api.LoopbackAddr(addr) != want {
			t.Errorf("LoopbackAddr(%s) = %v", addr, !want)
		}
	}
}
