package proxy_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/mcp/proxy"
)

func TestParseConfig(t *testing.T) {
	t.Parallel()
	good := `proxies:
  - name: github
    listen: 127.0.0.1:7070
    upstream: https://api.githubcopilot.com/mcp/
    credential: github-mcp-token
  - name: notes
    listen: "[::1]:7071"
    upstream: http://127.0.0.1:9000/mcp
    headers:
      X-API-Key: "{notes-api-key}"
      X-Tenant: "acme-{{literal}}-{notes-tenant}"
    client_token: ${file:/run/user/1000/rotator/notes-token}
`
	ups, err := proxy.ParseConfig("proxy.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != 2 || ups[0].Headers[0] != (proxy.Header{Name: "Authorization", Template: "Bearer {github-mcp-token}"}) ||
		ups[1].Headers[1].Template != "acme-{{literal}}-{notes-tenant}" || ups[1].ClientToken == "" || ups[1].Listen != "[::1]:7071" {
		t.Errorf("parsed: %+v", ups)
	}

	for name, tc := range map[string]struct {
		doc  string
		want []string // "line|field|message part"
	}{
		"unknown top key": {"proxy:\n  - name: x\n", []string{"1|proxy|unknown key; the only top-level key is proxies", "1|proxies|missing"}},
		"not a list":      {"proxies: {}\n", []string{"1|proxies|must be a non-empty list"}},
		"missing fields":  {"proxies:\n  - listen: 127.0.0.1:1\n", []string{"2|proxies[0].name|missing", "2|proxies[0].upstream|missing", "2|proxies[0].credential|no credential"}},
		"bad values": {`proxies:
  - name: a
    listen: 0.0.0.0:7070
    upstream: http://mcp.example.com/mcp
    credential: Bad_Id
    lisen: x
`, []string{
			"3|proxies[0].listen|is not a loopback address; listening there in clear is refused",
			"4|proxies[0].upstream|is not a loopback address: the injected credential would cross the network in clear",
			`5|proxies[0].credential|credential "Bad_Id" is not a credential id`,
			`6|proxies[0].lisen|unknown key; valid keys are client_token, credential, headers`,
		}},
		"headers": {`proxies:
  - name: a
    listen: 127.0.0.1:7070
    upstream: https://x.example/mcp
    credential: other
    headers:
      Connection: "{a}"
      X-Key: "literal"
      X-Tok: "ghp_0123456789abcdefghijABCDEFGHIJ012345 {a}"  # rotator:ignore: test fixture
      X-Ok: "Bearer {a"
      Mcp-Session-Id: "{a}"
`, []string{
			"7|proxies[0].headers|Connection is a hop-by-hop header",
			"8|proxies[0].headers.X-Key|template names no credential",
			"9|proxies[0].headers.X-Tok|looks like a",
			"10|proxies[0].headers.X-Ok|is not closed",
			"11|proxies[0].headers|belongs to HTTP or to the MCP transport",
		}},
		"credential named by no header": {`proxies:
  - name: a
    listen: 127.0.0.1:7070
    upstream: https://x.example/mcp
    credential: other
    headers:
      X-Key: "{a}"
`, []string{`5|proxies[0].credential|credential "other" is named by no header template`}},
		"literal client token": {`proxies:
  - name: a
    listen: 127.0.0.1:7070
    upstream: https://x.example/mcp
    credential: a
    client_token: s3cr3t-Lit3ral-t0ken-9f8e7d6c5b4a
`, []string{"6|proxies[0].client_token|must be a secret reference, never the token itself"}},
		"duplicates": {`proxies:
  - {name: a, listen: "127.0.0.1:7070", upstream: "https://x.example/", credential: a}
  - {name: a, listen: "127.0.0.1:7070", upstream: "https://y.example/", credential: b}
`, []string{`3|proxies[1].name|"a" is also the name of proxies[0]`, "3|proxies[1].listen|127.0.0.1:7070 is also the listen address of proxies[0]"}},
		"not yaml": {"proxies:\n  - name: a\n\tlisten: x\n", []string{"2||not valid YAML"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := proxy.ParseConfig("proxy.yaml", []byte(tc.doc))
			var ce *config.Errors
			if !errors.As(err, &ce) {
				t.Fatalf("want *config.Errors, got %v", err)
			}
			for _, w := range tc.want {
				parts := strings.SplitN(w, "|", 3)
				found := false
				for _, e := range ce.List {
					if e.File == "proxy.yaml" && itoa(e.Line) == parts[0] && e.Field == parts[1] && strings.Contains(e.Msg, parts[2]) {
						found = true
					}
				}
				if !found {
					t.Errorf("want line %s field %q message %q; got:\n%v", parts[0], parts[1], parts[2], err)
				}
			}
			if strings.Contains(err.Error(), "s3cr3t") || strings.Contains(err.Error(), "ghp_") {
				t.Errorf("an error repeats a secret:\n%v", err)
			}
		})
	}
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	_, err := proxy.LoadConfig(filepath.Join(dir, "absent.yaml"))
	if err == nil || !strings.Contains(err.Error(), "absent.yaml: cannot read the proxy configuration") {
		t.Errorf("absent file: %v", err)
	}
	path := filepath.Join(dir, "p.yaml")
	if err := os.WriteFile(path, []byte("proxies:\n  - {name: a, listen: '127.0.0.1:0', upstream: 'https://x.example/', credential: a}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if ups, err := proxy.LoadConfig(path); err != nil || len(ups) != 1 {
		t.Errorf("%v %v", ups, err)
	}
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "0s", 0)
	auth := []proxy.Header{{Name: "Authorization", Template: "Bearer {api}"}}
	for name, tc := range map[string]struct {
		up   proxy.Upstream
		want string
	}{
		"all interfaces in clear": {proxy.Upstream{Listen: ":7070", URL: "https://x.example/", Headers: auth}, "(every interface) is not a loopback address"},
		"a LAN address in clear":  {proxy.Upstream{Listen: "192.168.1.5:7070", URL: "https://x.example/", Headers: auth}, "not a loopback address"},
		"http off loopback":       {proxy.Upstream{Listen: "127.0.0.1:0", URL: "http://x.example/", Headers: auth}, "would cross the network in clear"},
		"password in the URL":     {proxy.Upstream{Listen: "127.0.0.1:0", URL: "https://u:p@x.example/", Headers: auth}, "user information"}, // rotator:ignore: test fixture
		"no header":               {proxy.Upstream{Listen: "127.0.0.1:0", URL: "https://x.example/"}, "no header to inject"},
		"header twice":            {proxy.Upstream{Listen: "127.0.0.1:0", URL: "https://x.example/", Headers: append(auth, proxy.Header{Name: "authorization", Template: "{api}"})}, "given twice"},
		"tls half":                {proxy.Upstream{Listen: "127.0.0.1:0", URL: "https://x.example/", Headers: auth, TLSCert: "c.pem"}, "both a certificate and a key"},
		"no port":                 {proxy.Upstream{Listen: "127.0.0.1", URL: "https://x.example/", Headers: auth}, "give host:port"},
	} {
		_, err := proxy.New(w.src, []proxy.Upstream{tc.up}, proxy.Options{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error with %q", name, err, tc.want)
		}
	}
	// With TLS and a client token, a non-loopback address is accepted.
	tlsUp := proxy.Upstream{Listen: "0.0.0.0:7070", URL: "https://x.example/", Headers: auth, TLSCert: "c.pem", TLSKey: "k.pem"}
	if _, err := proxy.New(w.src, []proxy.Upstream{tlsUp}, proxy.Options{}); err == nil || !strings.Contains(err.Error(), "needs a client token") {
		t.Errorf("TLS off loopback without a client token: %v", err)
	}
	tlsUp.ClientToken = "${env:PROXY_TOKEN}"
	if _, err := proxy.New(w.src, []proxy.Upstream{tlsUp}, proxy.Options{}); err != nil {
		t.Errorf("TLS off loopback: %v", err)
	}
}
