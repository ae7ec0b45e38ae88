package api_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/rotatorhq/rotator/internal/api"
	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/delivery/deliverytest"
	"github.com/rotatorhq/rotator/internal/store"
)

// childEnv makes the test binary a socket client (TestMain): it GETs
// $ROTATOR_TEST_CHILD_PATH over the socket $childEnv and prints the status
// code, a newline and the body.
const childEnv = "ROTATOR_TEST_CHILD_SOCKET"

func childRead() int {
	resp, err := dialSocket(os.Getenv(childEnv)).Get("http://rotator-socket" + os.Getenv("ROTATOR_TEST_CHILD_PATH"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	fmt.Printf("%d\n%s", resp.StatusCode, body)
	return 0
}

// childBinary copies the test binary where other uids may run it (the
// build directory is root's alone).
func childBinary(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "rtrbin")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	src, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "api.test")
	if err := os.WriteFile(bin, src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

// readAs runs bin (the test binary) as uid/gid and reads path over the
// socket.
func readAs(t *testing.T, bin string, b *bundle, uid, gid uint32, path string) (int, string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin)
	cmd.Env = append(os.Environ(), childEnv+"="+b.socket, "ROTATOR_TEST_CHILD_PATH="+path)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid, Groups: []uint32{}}}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("child as uid %d: %v\n%s", uid, err, errOut.String())
	}
	code, body, _ := strings.Cut(out.String(), "\n")
	var n int
	fmt.Sscan(code, &n)
	return n, body
}

// TestSocketPeers: the socket authorises each process by its uid (and
// groups). It runs children under other uids, which needs root; as any
// other user it is skipped (the suite's socket tests still run as the
// current uid).
func TestSocketPeers(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("running a child process under another uid needs root; the socket tests above cover the current uid")
	}
	const allowed, other, group = 65534, 65533, 65534
	gid := uint32(group)
	rules := []api.Rule{uidRule(t, allowed, deliverytest.CredA), {GID: &gid, Selectors: selectors(t, deliverytest.CredB)}}
	b := newBundleGroup(t, "sqlite", rules, fmt.Sprint(group))
	path := func(id string) string { return "/v1/credentials/" + id + "/value" }
	bin := childBinary(t)

	// The allowed uid reads its credential.
	code, body := readAs(t, bin, b, allowed, group, path(deliverytest.CredA))
	var v struct{ Value, Version string }
	if code != http.StatusOK || json.Unmarshal([]byte(body), &v) != nil || v.Value != b.f.Value(t, deliverytest.CredA) {
		t.Fatalf("uid %d reading %s: %d", allowed, deliverytest.CredA, code)
	}
	// Another uid (in the socket's group, so it may connect) gets a clear
	// 403, recorded.
	code, body = readAs(t, bin, b, other, group, path(deliverytest.CredA))
	var prob struct{ Detail, Code string }
	_ = json.Unmarshal([]byte(body), &prob)
	if code != http.StatusForbidden || prob.Code != "forbidden" || !strings.Contains(prob.Detail, fmt.Sprintf("uid:%d may not read credential %q", other, deliverytest.CredA)) ||
		!strings.Contains(prob.Detail, "delivery.allow") {
		t.Errorf("uid %d reading %s: %d %s; want a 403 naming the uid and how to allow it", other, deliverytest.CredA, code, body)
	}
	// A group rule: the other uid, in the group, reads what the group may.
	if code, _ := readAs(t, bin, b, other, group, path(deliverytest.CredB)); code != http.StatusOK {
		t.Errorf("uid %d with gid %d reading %s: %d; want 200 by the group rule", other, group, deliverytest.CredB, code)
	}

	var refused, reads []string
	err := b.f.Store.ScanAuditEvents(t.Context(), store.AuditFilter{}, func(e store.AuditEvent) error {
		var d delivery.ReadEvent
		_ = json.Unmarshal(e.Data, &d)
		switch e.Action {
		case api.ActionReadRefused:
			refused = append(refused, e.CredentialID+" "+d.Reader+" "+d.Via)
		case delivery.ActionValueRead:
			reads = append(reads, e.CredentialID+" "+d.Reader+" "+d.Version)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("%s uid:%d socket", deliverytest.CredA, other); len(refused) != 1 || !strings.HasPrefix(refused[0], want) {
		t.Errorf("refused-read events %q; want one: %q", refused, want)
	}
	if len(reads) != 2 || !strings.HasPrefix(reads[0], fmt.Sprintf("%s uid:%d", deliverytest.CredA, allowed)) || !strings.HasSuffix(reads[0], v.Version) {
		t.Errorf("value.read events %q; want the allowed uid's read of %s %s, then the group's", reads, deliverytest.CredA, v.Version)
	}
	assertCanary(t, b, v.Value)
}
