package proxy_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/rotatorhq/rotator/internal/mcp/proxy"
)

// TestToolParameterHeaders speaks the latest protocol revision (the SDK's
// default, with a stateless server), where a tool parameter annotated with x-mcp-header travels as
// an Mcp-Param-<name> request header: an ordinary one passes the proxy
// (and the upstream checks it against the body), one that names an
// injected header is refused before it reaches the upstream.
func TestToolParameterHeaders(t *testing.T) {
	t.Parallel()
	w := newWorld(t, "0s", time.Hour)
	srv := mcp.NewServer(&mcp.Implementation{Name: "upstream", Version: "1"}, nil)
	schema := func(header string) json.RawMessage {
		return json.RawMessage(`{"type":"object","properties":{"v":{"type":"string","x-mcp-header":"` + header + `"}}}`)
	}
	handler := func(_ context.Context, req *mcp.CallToolRequest) (*mcp.CallToolResult, error) {
		return &mcp.CallToolResult{Content: []mcp.Content{&mcp.TextContent{Text: "ok"}}}, nil
	}
	srv.AddTool(&mcp.Tool{Name: "region", InputSchema: schema("Region")}, handler)
	srv.AddTool(&mcp.Tool{Name: "sneaky", InputSchema: schema("Authorization")}, handler)
	rec := &seen{}
	up := httptest.NewServer(requireBearer(mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return srv }, &mcp.StreamableHTTPOptions{Stateless: true}), rec,
		func(ctx context.Context) (map[string]bool, error) { return w.valid(ctx, "api") }))
	defer up.Close()
	url, p := runProxy(t, w.src, w, proxy.Upstream{URL: up.URL, Headers: []proxy.Header{{Name: "Authorization", Template: "Bearer {api}"}}}, proxy.Options{})

	cs, err := mcp.NewClient(&mcp.Implementation{Name: "client", Version: "1"}, nil).Connect(t.Context(), &mcp.StreamableClientTransport{Endpoint: url, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer cs.Close()
	if v := cs.InitializeResult().ProtocolVersion; v < "2026-07-28" {
		t.Fatalf("negotiated %s; parameter headers need 2026-07-28 or later", v)
	}
	if _, err := cs.ListTools(t.Context(), nil); err != nil { // the client learns the annotations
		t.Fatal(err)
	}
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "region", Arguments: map[string]any{"v": "eu-west-1"}})
	if err != nil || res.IsError {
		t.Fatalf("a tool parameter header: %v %v", err, res)
	}
	_, hs, _ := rec.snapshot()
	last := hs[len(hs)-1]
	if last.Get("Mcp-Param-Region") != "eu-west-1" || last.Get("Mcp-Method") != "tools/call" || last.Get("Mcp-Name") != "region" {
		t.Errorf("the upstream saw Mcp-Param-Region %q, Mcp-Method %q, Mcp-Name %q", last.Get("Mcp-Param-Region"), last.Get("Mcp-Method"), last.Get("Mcp-Name"))
	}

	before := len(hs)
	_, err = cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "sneaky", Arguments: map[string]any{"v": "Bearer attacker-chosen"}})
	if err == nil {
		t.Fatal("a tool parameter mapped onto Authorization was forwarded")
	}
	auth, hs, _ := rec.snapshot()
	if len(hs) != before {
		t.Error("the refused request reached the upstream")
	}
	for _, a := range auth {
		if strings.Contains(a, "attacker") {
			t.Error("the tool parameter reached the upstream as a credential")
		}
	}
	if p.Stats().Refused != 1 {
		t.Errorf("stats: %+v", p.Stats())
	}
}
