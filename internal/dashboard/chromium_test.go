package dashboard_test

import (
	"bytes"
	"context"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/rotatorhq/rotator/internal/store"
)

// UpdateScreenshotsEnv, set to 1, makes TestChromium write its screenshots
// to docs/ (docs/dashboard-credentials.png and docs/dashboard-run.png).
const UpdateScreenshotsEnv = "ROTATOR_UPDATE_SCREENSHOTS"

// TestChromium drives Debian's chromium, headless, through a real server
// with seeded credentials: it logs in with a token by typing it into the
// form, checks that the credentials page lists every seeded credential with
// the failing one first, opens the failing run, starts a rotation with the
// button (so a real browser's POST passes the CSRF, Origin and
// Sec-Fetch-Site checks), and fails on any console message of type error or
// exception (a CSP violation, a failed request, an uncaught error). Without
// chromium it fails: scripts/test-services.sh installs it.
func TestChromium(t *testing.T) {
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("chromium is not installed (apt-get install chromium; scripts/test-services.sh installs it): %v", err)
	}
	// The dashboard sees the credentials 50 minutes after their rotation:
	// the age bars have grown and slack-bot-token (max age 1h) is due.
	b := setup(t, setupOpts{rotateAll: true, ahead: 50 * time.Minute})
	tok := b.token(t, "oncall", "rotate")

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1360, 860),
		chromedp.UserDataDir(t.TempDir()),
		// This machine's network is closed: no background connections.
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true),
	)
	actx, acancel := chromedp.NewExecAllocator(ctx, opts...)
	defer acancel()
	cctx, ccancel := chromedp.NewContext(actx)
	defer ccancel()
	var closeOnce sync.Once
	closeBrowser := func() {
		closeOnce.Do(func() {
			if err := chromedp.Cancel(cctx); err != nil {
				t.Logf("closing chromium: %v", err)
			}
		})
	}
	defer closeBrowser() // before the leak check, also after a failure

	var (
		mu   sync.Mutex
		msgs []chromedp.ConsoleMessage
		done = make(chan struct{})
	)
	if err := chromedp.Do(cctx); err != nil { // starts the browser
		t.Fatalf("starting chromium: %v", err)
	}
	console := chromedp.Console(cctx)
	go func() {
		defer close(done)
		for m, err := range console {
			if err != nil {
				return
			}
			mu.Lock()
			msgs = append(msgs, m)
			mu.Unlock()
		}
	}()

	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		for i, a := range actions {
			actx, cancel := context.WithTimeout(cctx, 15*time.Second)
			err := chromedp.Do(actx, a)
			cancel()
			if err != nil {
				html, _ := chromedp.Run(cctx, chromedp.OuterHTML(chromedp.CSS("main")))
				t.Fatalf("%s, action %d: %v; the page's main element:\n%s", what, i+1, err, html)
			}
		}
	}
	step("log in",
		chromedp.Navigate(b.srv.URL+"/"),
		chromedp.WaitVisible(chromedp.ID("token")),
		chromedp.SendKeys(chromedp.ID("token"), tok),
		chromedp.Submit(chromedp.ID("token")),
		chromedp.WaitVisible(chromedp.ID("credentials")),
	)
	html, err := chromedp.Run(cctx, chromedp.OuterHTML(chromedp.CSS("html")))
	if err != nil {
		t.Fatal(err)
	}
	ids, statuses := rowsOf(html)
	want := []string{"github-mcp-token", "linear-api-key", "notion-integration", failingID, "slack-bot-token"}
	for _, w := range want {
		if !strings.Contains(strings.Join(ids, " "), w) {
			t.Errorf("the credentials page in chromium does not list %s (it lists %v)", w, ids)
		}
	}
	if len(ids) != len(want) || ids[0] != failingID || statuses[0] != string(store.StatusFailing) {
		t.Errorf("credentials in chromium: %v %v; want %d, %s (failing) first", ids, statuses, len(want), failingID)
	}
	shot(t, cctx, "dashboard-credentials.png")

	step("open the failing run",
		chromedp.Navigate(b.srv.URL+"/runs/"+b.failRun),
		chromedp.WaitVisible(chromedp.ID("steps")),
	)
	text, err := chromedp.Run(cctx, chromedp.Text(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range []string{"mint: injected failure", "runbooks/generated.md#rotation"} {
		if !strings.Contains(text, w) {
			t.Errorf("the run page in chromium has no %q", w)
		}
	}
	shot(t, cctx, "dashboard-run.png")

	step("rotate with the button",
		chromedp.Navigate(b.srv.URL+"/credentials/github-mcp-token"),
		chromedp.WaitVisible(chromedp.ID("reason-manual")),
		chromedp.SendKeys(chromedp.ID("reason-manual"), "checked from chromium"),
		chromedp.Submit(chromedp.ID("reason-manual")),
		chromedp.WaitVisible(chromedp.CSS(".flash")),
	)
	runs, err := b.st.ListRuns(t.Context(), store.RunFilter{CredentialID: "github-mcp-token", Limit: 1})
	if err != nil || len(runs) != 1 || runs[0].Actor != "dashboard:oncall" || runs[0].Reason != "checked from chromium" {
		t.Errorf("the rotate button in chromium started %+v (%v); want a run by dashboard:oncall", runs, err)
	}

	step("log out",
		chromedp.Click(chromedp.CSS("header form button")),
		chromedp.WaitVisible(chromedp.ID("token")),
	)
	// A control: a page that is not found logs a console error, which the
	// listener must see (else the check below proves nothing).
	mu.Lock()
	seen := len(msgs)
	mu.Unlock()
	step("load a missing page", chromedp.Navigate(b.srv.URL+"/no-such-page"), chromedp.WaitVisible(chromedp.CSS(".error")))
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(msgs)
		mu.Unlock()
		if n > seen || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	closeBrowser()
	<-done
	mu.Lock()
	defer mu.Unlock()
	control := msgs[seen:]
	if len(control) == 0 || control[0].Type != chromedp.ConsoleError {
		t.Errorf("the console listener saw no error for a 404 page (%v): it would miss real errors", control)
	}
	for _, m := range msgs[:seen] {
		t.Logf("console %s (%s:%d)", m, m.URL, m.Line+1)
		if m.Type == chromedp.ConsoleError || m.IsException() || strings.Contains(m.Text, "Uncaught") {
			t.Errorf("console error in chromium: %s (%s:%d)", m, m.URL, m.Line+1)
		}
	}
}

// shot takes a full-page PNG screenshot, checks that it decodes, and
// writes it to docs/ when UpdateScreenshotsEnv is 1.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	img, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	cfg, err := png.DecodeConfig(bytes.NewReader(img))
	if err != nil || cfg.Width < 800 || cfg.Height < 300 {
		t.Fatalf("screenshot %s: %dx%d %v", name, cfg.Width, cfg.Height, err)
	}
	dir := t.TempDir()
	if os.Getenv(UpdateScreenshotsEnv) == "1" {
		dir = filepath.Join("..", "..", "docs")
	}
	if err := os.WriteFile(filepath.Join(dir, name), img, 0o644); err != nil {
		t.Fatal(err)
	}
}
