package exec_test

// The test binary plays two more parts, chosen by an environment variable:
// a real stdio MCP server built with the official Go SDK (roleServer), and
// `rotator exec` itself over the SQLite store (roleExec), so the tests
// drive real processes with the SDK's CommandTransport.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/rotatorhq/rotator/internal/delivery"
	"github.com/rotatorhq/rotator/internal/mcp/exec"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store/sqlite"
)

const (
	// envRole selects the part the test binary plays.
	envRole    = "ROTATOR_EXEC_TEST_ROLE"
	roleServer = "server"
	roleExec   = "exec"
	// envSpec holds the JSON execSpec of roleExec.
	envSpec = "ROTATOR_EXEC_TEST_SPEC"
	// The test server reads its token from envToken, or from the file
	// named by envTokenFile (again on SIGHUP).
	envToken     = "TEST_TOKEN"
	envTokenFile = "TEST_TOKEN_FILE"
)

// execSpec configures roleExec.
type execSpec struct {
	Database string   `json:"database"`
	Env      []string `json:"env"`
	Files    []string `json:"files"`
	OnRotate string   `json:"on_rotate"`
	// Command is run as is; empty: the test binary as roleServer.
	Command []string `json:"command"`
	// ChildEnv is added to the server's environment.
	ChildEnv     []string      `json:"child_env"`
	DrainTimeout time.Duration `json:"drain_timeout"`
	Poll         time.Duration `json:"poll"`
}

// fingerprint identifies a value in test output without revealing it.
func fingerprint(v []byte) string {
	s := sha256.Sum256(v)
	return hex.EncodeToString(s[:8])
}

// whoami is what the test server's tools answer.
type whoami struct {
	Fingerprint string `json:"fingerprint"`
	PID         int    `json:"pid"`
	// MasterKeyVisible: the server inherited rotator's master key.
	MasterKeyVisible bool `json:"master_key_visible"`
	// Slept is how long the slow tool slept (ms).
	Slept int `json:"slept"`
}

type slowIn struct {
	MS int `json:"ms"`
	// Stubborn: sleep on when the call is cancelled.
	Stubborn bool `json:"stubborn,omitempty"`
}

// envFailIf names a file whose existence makes the test server fail at
// start (exit 3), as a server does with a bad configuration.
const envFailIf = "TEST_FAIL_IF_EXISTS"

// runServer is roleServer: a stdio MCP server with a quick and a slow tool.
func runServer() int {
	if p := os.Getenv(envFailIf); p != "" {
		if _, err := os.Stat(p); err == nil {
			fmt.Fprintln(os.Stderr, "test server: told to fail at start")
			return 3
		}
	}
	var mu sync.Mutex
	read := func() string {
		if p := os.Getenv(envTokenFile); p != "" {
			b, err := os.ReadFile(p)
			if err != nil {
				fmt.Fprintf(os.Stderr, "test server: reading the token file: %v\n", err)
				return ""
			}
			return fingerprint(b)
		}
		return fingerprint([]byte(os.Getenv(envToken)))
	}
	fp := read()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		for range hup {
			f := read()
			mu.Lock()
			fp = f
			mu.Unlock()
		}
	}()
	me := func(slept int) whoami {
		mu.Lock()
		defer mu.Unlock()
		_, mk := os.LookupEnv(secret.EnvMasterKey)
		return whoami{Fingerprint: fp, PID: os.Getpid(), MasterKeyVisible: mk, Slept: slept}
	}
	s := mcp.NewServer(&mcp.Implementation{Name: "exec-test-server", Version: "1"}, nil)
	mcp.AddTool(s, &mcp.Tool{Name: "whoami", Description: "fingerprint of the token this server holds"},
		func(context.Context, *mcp.CallToolRequest, struct{}) (*mcp.CallToolResult, whoami, error) {
			return nil, me(0), nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "slow", Description: "sleeps ms milliseconds, then answers as whoami"},
		func(ctx context.Context, _ *mcp.CallToolRequest, in slowIn) (*mcp.CallToolResult, whoami, error) {
			done := ctx.Done()
			if in.Stubborn {
				done = nil
			}
			select {
			case <-time.After(time.Duration(in.MS) * time.Millisecond):
			case <-done:
				return nil, whoami{}, ctx.Err()
			}
			return nil, me(in.MS), nil
		})
	mcp.AddTool(s, &mcp.Tool{Name: "log", Description: "logs an info message to the client (sent only once the client set a log level)"},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, whoami, error) {
			w := me(0)
			err := req.Session.Log(ctx, &mcp.LoggingMessageParams{Level: "info", Data: fmt.Sprintf("pid %d", w.PID)})
			return nil, w, err
		})
	mcp.AddTool(s, &mcp.Tool{Name: "ask", Description: "asks the client to sample a message (a request to the client), then answers as whoami"},
		func(ctx context.Context, req *mcp.CallToolRequest, _ struct{}) (*mcp.CallToolResult, whoami, error) {
			_, err := req.Session.CreateMessage(ctx, &mcp.CreateMessageParams{MaxTokens: 10,
				Messages: []*mcp.SamplingMessage{{Role: "user", Content: &mcp.TextContent{Text: "hello"}}}})
			if err != nil {
				return nil, whoami{}, err
			}
			return nil, me(0), nil
		})
	if err := s.Run(context.Background(), &mcp.StdioTransport{}); err != nil {
		fmt.Fprintf(os.Stderr, "test server: %v\n", err)
		return 1
	}
	return 0
}

// runExec is roleExec: `rotator exec` over the SQLite store, the master key
// from ROTATOR_MASTER_KEY, the server from the spec.
func runExec() int {
	fail := func(err error) int {
		fmt.Fprintf(os.Stderr, "test exec: %v\n", err)
		return 1
	}
	var spec execSpec
	if err := json.Unmarshal([]byte(os.Getenv(envSpec)), &spec); err != nil {
		return fail(err)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, "sqlite://"+spec.Database)
	if err != nil {
		return fail(err)
	}
	defer st.Close()
	kr, _, err := secret.LoadMasterKey(secret.MasterKeyOptions{})
	if err != nil {
		return fail(err)
	}
	src, err := delivery.NewLocal(delivery.LocalOptions{Store: st, Keyring: kr, Reader: "uid:0 (exec-test)", Poll: spec.Poll})
	if err != nil {
		return fail(err)
	}
	opts := exec.Options{
		Source: src, Command: spec.Command, GraceEnd: exec.StoreGraceEnd(st),
		DrainTimeout: spec.DrainTimeout, StopTimeout: 3 * time.Second, Redactor: &secret.Redactor{},
	}
	if len(opts.Command) == 0 {
		opts.Command = []string{os.Args[0]}
		var env []string
		for _, kv := range os.Environ() {
			if !strings.HasPrefix(kv, envRole+"=") {
				env = append(env, kv)
			}
		}
		opts.Environ = append(env, envRole+"="+roleServer)
	}
	if opts.Environ == nil {
		opts.Environ = os.Environ()
	}
	opts.Environ = append(opts.Environ, spec.ChildEnv...)
	for _, s := range spec.Env {
		b, err := exec.ParseEnv(s)
		if err != nil {
			return fail(err)
		}
		opts.Env = append(opts.Env, b)
	}
	for _, s := range spec.Files {
		b, err := exec.ParseFile(s)
		if err != nil {
			return fail(err)
		}
		opts.Files = append(opts.Files, b)
	}
	if spec.OnRotate != "" {
		if opts.OnRotate, err = exec.ParseOnRotate(spec.OnRotate); err != nil {
			return fail(err)
		}
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGUSR1)
	opts.Signals = sigs
	code, err := exec.Run(ctx, opts)
	if err != nil {
		return fail(err)
	}
	return code
}
