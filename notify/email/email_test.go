package email_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"mime"
	"mime/multipart"
	"net"
	"net/mail"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/notify/email"
)

const (
	// rotator:ignore: test fixture (canary)
	canaryPassword = "CANARY-smtp-password-91be"
	canaryValue    = "CANARY-credential-value-0c4d"
)

// delivered is one message the server accepted.
type delivered struct {
	from     string
	to       []string
	data     []byte
	tls      bool
	authUser string
}

type backend struct {
	mu       sync.Mutex
	got      []delivered
	rcptErr  *smtp.SMTPError
	needAuth bool
}

func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	return &session{b: b, c: c}, nil
}

type session struct {
	b    *backend
	c    *smtp.Conn
	cur  delivered
	user string
}

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, username, password string) error {
		if username != "rotator" || password != canaryPassword {
			return errors.New("invalid credentials")
		}
		s.user = username
		return nil
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.b.needAuth && s.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "authentication required"}
	}
	_, isTLS := s.c.TLSConnectionState()
	s.cur = delivered{from: from, tls: isTLS, authUser: s.user}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	if s.b.rcptErr != nil {
		return s.b.rcptErr
	}
	s.cur.to = append(s.cur.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.cur.data = data
	s.b.mu.Lock()
	s.b.got = append(s.b.got, s.cur)
	s.b.mu.Unlock()
	return nil
}

func (s *session) Reset()        {}
func (s *session) Logout() error { return nil }

// certificate makes a self-signed certificate for 127.0.0.1 and writes it
// as the CA file the receiver trusts.
func certificate(t *testing.T) (tls.Certificate, string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, caFile
}

// setup starts an in-process SMTP server in the given mode and returns a
// receiver configured for it.
func setup(t *testing.T, mode string, extra settings.Map) (notify.Receiver, *backend) {
	t.Helper()
	cert, caFile := certificate(t)
	be := &backend{needAuth: mode != email.TLSNone}
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	srv.AllowInsecureAuth = mode == email.TLSNone
	tc := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	var ln net.Listener
	var err error
	switch mode {
	case email.TLSImplicit:
		ln, err = tls.Listen("tcp", "127.0.0.1:0", tc)
	case email.TLSStartTLS:
		srv.TLSConfig = tc
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	default:
		ln, err = net.Listen("tcp", "127.0.0.1:0")
	}
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	s := settings.Map{"host": "127.0.0.1", "port": port, "tls": mode, "ca_file": caFile,
		"from": "rotator@example.com", "to": []any{"oncall@example.com", "security@example.com"}, "timeout": "5s"}
	if mode != email.TLSNone {
		s["username"], s["password"] = "rotator", secret.NewString(canaryPassword)
	}
	for k, v := range extra {
		s[k] = v
	}
	rcv, err := email.New(notify.NewRequest{Name: "mail", Settings: s})
	if err != nil {
		t.Fatal(err)
	}
	return rcv, be
}

func message() notify.Message {
	return notify.Message{DeliveryID: "01JDELIVERY", Receiver: "mail", GroupKey: "0:mail:{kind=credential.needs_attention}",
		Events: []notify.Event{{ID: "e1", Kind: notify.KindNeedsAttention, Time: time.Unix(1_800_000_000, 0).UTC(),
			CredentialID: "reports-db-password", Consumer: "mcp-server-postgres", RunID: "01JRUN", Runbook: "runbooks/postgres-role.md#rotation",
			Links:   &notify.Links{Run: "https://rotator.example.com/runs/01JRUN"},
			Summary: "credential reports-db-password needs attention after 5 failed rotations", Reason: "verify: permission denied"}}}
}

// parts returns the content types and bodies of a multipart/alternative message.
func parts(t *testing.T, data []byte) (*mail.Message, map[string]string) {
	t.Helper()
	m, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	mt, params, err := mime.ParseMediaType(m.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/alternative" {
		t.Fatalf("content type %q: %v", m.Header.Get("Content-Type"), err)
	}
	out := map[string]string{}
	mr := multipart.NewReader(m.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		body, _ := io.ReadAll(p) // quoted-printable is decoded by NextPart
		out[ct] = string(body)
	}
	return m, out
}

func TestEmail(t *testing.T) {
	t.Parallel()
	for _, mode := range []string{email.TLSStartTLS, email.TLSImplicit, email.TLSNone} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			rcv, be := setup(t, mode, nil)
			if retry, err := rcv.Notify(context.Background(), message()); err != nil {
				t.Fatalf("retry %v: %v", retry, err)
			}
			if len(be.got) != 1 {
				t.Fatalf("%d messages", len(be.got))
			}
			d := be.got[0]
			if d.tls != (mode != email.TLSNone) {
				t.Fatalf("TLS %v in mode %s", d.tls, mode)
			}
			if mode != email.TLSNone && d.authUser != "rotator" {
				t.Fatalf("not authenticated")
			}
			if d.from != "rotator@example.com" || len(d.to) != 2 {
				t.Fatalf("envelope %s → %v", d.from, d.to)
			}
			m, p := parts(t, d.data)
			if !strings.Contains(m.Header.Get("Message-Id"), "01JDELIVERY") {
				t.Errorf("Message-ID %q lacks the delivery id", m.Header.Get("Message-Id"))
			}
			if subj, _ := new(mime.WordDecoder).DecodeHeader(m.Header.Get("Subject")); !strings.Contains(subj, "reports-db-password needs attention") {
				t.Errorf("subject %q", subj)
			}
			if !strings.Contains(p["text/plain"], "runbook:    runbooks/postgres-role.md#rotation") || !strings.Contains(p["text/plain"], "https://rotator.example.com/runs/01JRUN") {
				t.Errorf("text part:\n%s", p["text/plain"])
			}
			if !strings.Contains(p["text/html"], `<a href="https://rotator.example.com/runs/01JRUN">01JRUN</a>`) {
				t.Errorf("HTML part:\n%s", p["text/html"])
			}
			if strings.Contains(string(d.data), canaryPassword) || strings.Contains(string(d.data), canaryValue) {
				t.Fatal("a secret is in the email")
			}
		})
	}
	t.Run("permanent rejection is not retried, temporary is", func(t *testing.T) {
		t.Parallel()
		rcv, be := setup(t, email.TLSStartTLS, nil)
		be.rcptErr = &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such user"}
		retry, err := rcv.Notify(context.Background(), message())
		if err == nil || retry {
			t.Fatalf("550: retry %v err %v", retry, err)
		}
		if strings.Contains(err.Error(), canaryPassword) {
			t.Fatal("the error shows the password")
		}
		rcv2, be2 := setup(t, email.TLSStartTLS, nil)
		be2.rcptErr = &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
		if retry, err := rcv2.Notify(context.Background(), message()); err == nil || !retry {
			t.Fatalf("451: retry %v err %v", retry, err)
		}
	})
	t.Run("wrong password fails without showing it", func(t *testing.T) {
		t.Parallel()
		rcv, _ := setup(t, email.TLSStartTLS, settings.Map{"password": secret.NewString("CANARY-wrong-pass")})
		_, err := rcv.Notify(context.Background(), message())
		if err == nil || strings.Contains(err.Error(), "CANARY-wrong-pass") {
			t.Fatalf("err %v", err)
		}
	})
}

func TestStartTLSRequired(t *testing.T) {
	t.Parallel()
	// A plain server (no STARTTLS offered) and a receiver that demands it.
	be := &backend{}
	srv := smtp.NewServer(be)
	srv.Domain, srv.AllowInsecureAuth = "localhost", true
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	rcv, err := email.New(notify.NewRequest{Name: "mail", Settings: settings.Map{"host": "127.0.0.1",
		"port": strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), "tls": "starttls", "from": "r@example.com", "to": []any{"o@example.com"}}})
	if err == nil {
		_, err = rcv.Notify(context.Background(), message())
	}
	if err == nil || len(be.got) != 0 {
		t.Fatalf("sent without TLS: err %v, %d messages", err, len(be.got))
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	v := email.Factory().Validate
	ok := settings.Map{"host": "smtp.example.com", "from": "r@example.com", "to": []any{"o@example.com"}, "username": "u", "password": "${env:SMTP_PASSWORD}"}
	if errs := v(ok); len(errs) != 0 {
		t.Fatalf("valid: %v", errs)
	}
	bad := settings.Map{"host": "smtp.example.com", "from": "not an address", "tls": "ssl", "username": "u", "password": canaryPassword}
	errs := v(bad)
	var all []string
	for _, e := range errs {
		all = append(all, e.Error())
	}
	joined := strings.Join(all, "\n")
	for _, want := range []string{"from:", "to:", "tls:", "password: must be a reference"} {
		if !strings.Contains(joined, want) {
			t.Errorf("errors lack %q:\n%s", want, joined)
		}
	}
	if strings.Contains(joined, canaryPassword) {
		t.Fatal("an error shows the password")
	}
}
