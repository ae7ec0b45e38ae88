package exec

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
)

func TestParseLine(t *testing.T) {
	t.Parallel()
	cases := map[string]struct {
		line string
		want []message
	}{
		"request":       {`{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"x"}}`, []message{{kind: kindRequest, id: "7", method: "tools/call"}}},
		"string id":     {`{"jsonrpc":"2.0","id":"a-1","method":"ping"}`, []message{{kind: kindRequest, id: `"a-1"`, method: "ping"}}},
		"spaced id":     {`{"jsonrpc":"2.0", "id" : { "k" : 1 }, "method":"ping"}`, []message{{kind: kindRequest, id: `{"k":1}`, method: "ping"}}},
		"notification":  {`{"jsonrpc":"2.0","method":"notifications/initialized"}`, []message{{kind: kindNotification, method: methodInitialized}}},
		"null id":       {`{"jsonrpc":"2.0","id":null,"method":"notifications/x"}`, []message{{kind: kindNotification, method: "notifications/x"}}},
		"response":      {`{"jsonrpc":"2.0","id":7,"result":{}}`, []message{{kind: kindResponse, id: "7"}}},
		"error":         {`{"jsonrpc":"2.0","id":"7","error":{"code":-1,"message":"m"}}`, []message{{kind: kindResponse, id: `"7"`}}},
		"cancelled":     {`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":12,"reason":"r"}}`, []message{{kind: kindNotification, method: methodCancelled, ref: "12"}}},
		"subscribe":     {`{"jsonrpc":"2.0","id":3,"method":"resources/subscribe","params":{"uri":"file:///a"}}`, []message{{kind: kindRequest, id: "3", method: methodSubscribe, ref: "file:///a"}}},
		"listen ack":    {`{"jsonrpc":"2.0","method":"notifications/subscriptions/acknowledged","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":4},"notifications":{}}}`, []message{{kind: kindNotification, method: methodSubscriptionsAck, ref: "4"}}},
		"batch":         {`[{"jsonrpc":"2.0","id":1,"method":"a"},{"jsonrpc":"2.0","method":"b"}]`, []message{{kind: kindRequest, id: "1", method: "a"}, {kind: kindNotification, method: "b"}}},
		"invalid JSON":  {`{"jsonrpc":`, []message{{kind: kindOther}}},
		"invalid batch": {`[1,`, []message{{kind: kindOther}}},
		"neither":       {`{"jsonrpc":"2.0"}`, []message{{kind: kindOther}}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := parseLine([]byte(c.line + "\n")); !reflect.DeepEqual(got, c.want) {
				t.Errorf("parseLine(%s) = %+v, want %+v", c.line, got, c.want)
			}
		})
	}
}

func TestErrorResponse(t *testing.T) {
	t.Parallel()
	var got struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Error   struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(errorResponse(`"x-1"`, "stopped"), &got); err != nil {
		t.Fatal(err)
	}
	if got.JSONRPC != "2.0" || string(got.ID) != `"x-1"` || got.Error.Code != -32603 || got.Error.Message != "stopped" {
		t.Errorf("errorResponse: %+v", got)
	}
}

func TestReadLines(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", 200<<10)
	var got []string
	err := readLines(strings.NewReader("a\n"+long+"\nlast"), func(l []byte) { got = append(got, string(l)) })
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"a\n", long + "\n", "last\n"}; !reflect.DeepEqual(got, want) {
		t.Errorf("readLines: %d lines, want 3 (a, a 200 KiB line, last)", len(got))
	}
}

func TestParseFlags(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	modes := map[string]Mode{
		"restart": {Kind: ModeRestart}, "none": {Kind: ModeNone},
		"signal:HUP": {Kind: ModeSignal, Signal: syscall.SIGHUP}, "signal:SIGUSR1": {Kind: ModeSignal, Signal: syscall.SIGUSR1},
		"signal:usr2": {Kind: ModeSignal, Signal: syscall.SIGUSR2},
	}
	for in, want := range modes {
		if got, err := ParseOnRotate(in); err != nil || got != want {
			t.Errorf("ParseOnRotate(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	bad := map[string]func() error{
		`--on-rotate "reload": use restart, signal:NAME`: func() error { _, err := ParseOnRotate("reload"); return err },
		`--on-rotate "signal:FOO": unknown signal; use one of signal:HUP`: func() error {
			_, err := ParseOnRotate("signal:FOO")
			return err
		},
		`--env "TOKEN": use NAME=CREDENTIAL`:            func() error { _, err := ParseEnv("TOKEN"); return err },
		`--env "=cred": use NAME=CREDENTIAL`:            func() error { _, err := ParseEnv("=cred"); return err },
		`--env "1X=cred": "1X" is not a valid variable`: func() error { _, err := ParseEnv("1X=cred"); return err },
		`--env "A-B=cred": "A-B" is not a valid`:        func() error { _, err := ParseEnv("A-B=cred"); return err },
		`--file "/tmp/x": use PATH=CREDENTIAL`:          func() error { _, err := ParseFile("/tmp/x"); return err },
		`the directory /no/such/dir does not exist`:     func() error { _, err := ParseFile("/no/such/dir/tok=cred"); return err },
	}
	for want, f := range bad {
		if err := f(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("got %v, want an error saying %q", err, want)
		}
	}
	if b, err := ParseEnv("GITHUB_TOKEN=github-mcp"); err != nil || b != (Binding{Name: "GITHUB_TOKEN", Credential: "github-mcp"}) {
		t.Errorf("ParseEnv: %+v, %v", b, err)
	}
	p := filepath.Join(dir, "a=b")
	if b, err := ParseFile(p + "=cred"); err != nil || b != (Binding{Name: p, Credential: "cred"}) {
		t.Errorf("ParseFile: %+v, %v", b, err)
	}
}

func TestWriteFile(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte("old"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeFile(p, []byte("new")); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(p)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v; want 0600", fi.Mode(), err)
	}
	if b, _ := os.ReadFile(p); string(b) != "new" {
		t.Errorf("content %q", b)
	}
	left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), ".token.tmp-*"))
	if len(left) > 0 {
		t.Errorf("temporary files left: %v", left)
	}
	err = writeFile(filepath.Join(p, "sub"), []byte("x"))
	if err == nil || !strings.Contains(err.Error(), "writing --file "+filepath.Join(p, "sub")) {
		t.Errorf("writing under a file: %v", err)
	}
}

func TestChildEnv(t *testing.T) {
	t.Parallel()
	got := childEnv([]string{"PATH=/bin", "ROTATOR_MASTER_KEY=k", "TOKEN=old", "X=1"}, []string{"ROTATOR_MASTER_KEY"}, map[string]string{"TOKEN": "new"})
	if want := []string{"PATH=/bin", "X=1", "TOKEN=new"}; !reflect.DeepEqual(got, want) {
		t.Errorf("childEnv = %v, want %v", got, want)
	}
}
