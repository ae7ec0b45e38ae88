package main

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/api"
	"github.com/rotatorhq/rotator/internal/apitoken"
	"github.com/rotatorhq/rotator/internal/config"
)

// deliveryFlags are serve's consume API flags.
type deliveryFlags struct {
	socket, socketGroup string
	tlsCert, tlsKey     string
}

func (f *deliveryFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.socket, "socket", "", "serve the consume API on this Unix socket (mode 0660), authorised by the delivery: section of -f")
	cmd.Flags().StringVar(&f.socketGroup, "socket-group", "", "give the socket to this group (name or gid), whose members may connect")
	cmd.Flags().StringVar(&f.tlsCert, "tls-cert", "", "PEM certificate file: serve --listen over TLS (with --tls-key)")
	cmd.Flags().StringVar(&f.tlsKey, "tls-key", "", "PEM private key file of --tls-cert")
}

func (f deliveryFlags) tls() (*tls.Config, error) {
	if f.tlsCert == "" && f.tlsKey == "" {
		return nil, nil
	}
	cfg, err := api.LoadTLS(f.tlsCert, f.tlsKey)
	if err != nil {
		return nil, usageError{err}
	}
	return cfg, nil
}

// consumeAPI is the running consume API: its server, and its socket
// listener when --socket is given.
type consumeAPI struct {
	api    *api.Server
	socket *http.Server
	done   chan error
	logger *slog.Logger
	once   sync.Once
}

// startConsumeAPI builds the API (consume and management, docs/api.md)
// and, with --socket, serves the consume API on the socket. reload, when
// not nil, is POST /v1/config/reload's (the SIGHUP path).
func (a *app) startConsumeAPI(setup *engineSetup, cfg *config.Config, f deliveryFlags, runbookDir string,
	reload func(ctx context.Context, actor string) api.ReloadResult) (*consumeAPI, error) {
	rules, err := api.ResolveRules(cfg)
	if err != nil {
		return nil, usageError{err}
	}
	srv, err := api.New(api.Options{Store: setup.store, Keyring: setup.keyring, Rules: rules, Engine: setup.engine, Reload: reload,
		RunbookDir: runbookDir, Tokens: apitoken.NewService(setup.store, nil, a.logger), Logger: a.logger.With(slog.String("component", "api"))})
	if err != nil {
		return nil, err
	}
	c := &consumeAPI{api: srv, logger: a.logger}
	if f.socket == "" {
		return c, nil
	}
	if len(rules) == 0 {
		a.logger.Warn("--socket without delivery: rules (in the -f file): every read over the socket is refused", slog.String("socket", f.socket))
	}
	ln, err := api.ListenSocket(f.socket, f.socketGroup)
	if err != nil {
		_ = srv.Close()
		return nil, usageError{err}
	}
	c.socket = srv.NewSocketServer()
	c.done = make(chan error, 1)
	go func() { c.done <- c.socket.Serve(ln) }()
	return c, nil
}

// stop ends the API's long polls and background work, then closes the
// socket (waiting a little for requests in progress). It is idempotent.
func (c *consumeAPI) stop(ctx context.Context) {
	c.once.Do(func() { c.stopOnce(ctx) })
}

func (c *consumeAPI) stopOnce(ctx context.Context) {
	_ = c.api.Close()
	if c.socket != nil {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = c.socket.Shutdown(sctx)
		if err := <-c.done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			c.logger.Error("consume API socket failed", slog.String("error", err.Error()))
		}
		_ = c.socket.Close()
	}
}
