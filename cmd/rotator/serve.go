package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/api"
	"github.com/rotatorhq/rotator/internal/apitoken"
	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/dashboard"
	"github.com/rotatorhq/rotator/internal/gctune"
	"github.com/rotatorhq/rotator/internal/inventory"
	"github.com/rotatorhq/rotator/internal/metrics"
	"github.com/rotatorhq/rotator/notify"
	"github.com/rotatorhq/rotator/notify/outbox"
	"github.com/rotatorhq/rotator/rotation"
)

func (a *app) serveCommand() *cobra.Command {
	var (
		file        string
		listen      string
		workers     int
		rescueAfter time.Duration
		jobTimeout  time.Duration
		stopTimeout time.Duration
		maxConfig   int64
		dl          deliveryFlags
	)
	cmd := &cobra.Command{
		Use:   "serve [-f FILE]",
		Short: "Run the rotation service: scheduler, workers and health endpoints",
		Long: `Run rotator as a long-lived service. With -f, the file is applied first (as
'rotator apply' would). The service rotates every credential when it is due,
on River workers; several replicas may share one Postgres database (one of
them leads the scheduler). On an SQLite database one serve runs at a time: a
second refuses to start, naming the running one (it holds <database>.lock;
the CLI does not need it). /healthz answers while the process runs; /readyz
when the database answers and the workers have started; /metrics serves
Prometheus metrics (docs/operations.md).

With -f, the file's notify: section routes notification events (failures,
rollbacks, credentials needing attention, opt-in cut-overs) to webhooks, Slack
and email, grouped and retried; see docs/notifications.md and 'rotator notify'.

It refuses to start when the database holds values sealed under a master key
it was not given (see runbooks/master-key-rotation.md).

SIGHUP applies the -f file again, validated as apply validates it and in
one transaction: a file with problems changes nothing and each problem is
logged; a good one is used from the scheduler's next pass.

SIGINT or SIGTERM stops fetching new work and waits (up to --stop-timeout) for
running rotations to reach a committed step; an interrupted run resumes on the
next start.

On --listen, the management API under /v1 (docs/api.md) lists credentials and
runs, starts rotations, serves reports, verifies the audit chain and reloads
the -f file (POST /v1/config/reload), for tokens with the scopes read, rotate
or admin. The consume API (GET /v1/credentials/{id}/value, see
docs/consume-api.md) hands credentials' current values to the headers, exec
and proxy commands:
  --socket PATH   on a Unix socket (mode 0660), authorised by the connecting
                  process's uid and groups against the delivery: section of
                  the -f file; no token needed on one host
  --listen ADDR   beside /healthz, authorised by API tokens (rotator tokens
                  create); plaintext is answered for loopback clients only:
                  give --tls-cert and --tls-key to serve other hosts.`,
		Example: `  rotator serve -f examples/quickstart.yaml
  rotator serve -f rotator.yaml --socket /run/rotator/api.sock --socket-group mcp-clients
  ROTATOR_DATABASE_URL=postgres://rotator@db/rotator rotator serve --listen :8080 --workers 100`,
		Args:        cobra.NoArgs,
		Annotations: createsDatabase(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if rescueAfter <= jobTimeout {
				return usagef("--rescue-after (%s) must be longer than --job-timeout (%s): a rotation still running would be resumed by a second worker", rescueAfter, jobTimeout)
			}
			if workers < 1 {
				return usagef("--workers must be at least 1")
			}
			var cfg *config.Config
			runbookDir := ""
			if file != "" {
				var err error
				if cfg, err = loadConfig(file, maxConfig); err != nil {
					return err
				}
				runbookDir = filepath.Dir(file)
			}
			// One serve per SQLite file; the lock dies with the process.
			lock, err := a.lockServe()
			if err != nil {
				return err
			}
			defer lock.Release()
			tlsCfg, err := dl.tls()
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", listen)
			if err != nil {
				return usagef("--listen %s: %v", listen, err)
			}
			a.logRuns = true
			if cfg != nil && cfg.Notify != nil {
				// The machine kinds (cut_over, ...) are written only when a
				// route asks for them.
				a.notifyKinds = cfg.Notify.Wants
			}
			mx := metrics.New(metrics.Options{Logger: a.logger})
			a.observer = mx
			setup, err := a.newEngine(ctx, runbookDir)
			if err != nil {
				_ = ln.Close()
				return err
			}
			mx.ReadFrom(setup.store)
			defer setup.store.Close()
			defer setup.engine.Close()
			if cfg != nil {
				diff, err := inventory.Apply(ctx, setup.store, cfg, inventory.Options{Actor: "serve"})
				if err != nil {
					_ = ln.Close()
					return fmt.Errorf("applying %s: %w", file, err)
				}
				a.logger.Info("configuration applied", slog.String("file", file),
					slog.Int("created", diff.Count(inventory.Created)), slog.Int("updated", diff.Count(inventory.Updated)),
					slog.Int("unchanged", diff.Count(inventory.Unchanged)), slog.Int("removed", diff.Count(inventory.Removed)))
				for _, w := range diff.Warnings {
					a.logger.Warn("configuration warning", slog.String("warning", w))
				}
			}
			if gctune.Apply() {
				a.logger.Debug("garbage collector set", slog.Int("gogc", gctune.Percent))
			}
			ropts := rotation.RunnerOptions{
				Workers: workers, Scheduler: true, JobTimeout: jobTimeout, RescueAfter: rescueAfter,
				LeaderTasks: a.leaderTasks(setup.store),
			}
			// Notifications: the leader routes and groups outbox events, River
			// jobs deliver them (docs/notifications.md).
			var disp *outbox.Dispatcher
			if cfg != nil && cfg.Notify != nil {
				if disp, err = a.dispatcher(setup.store, cfg.Notify, notify.Retrier{}); err != nil {
					_ = ln.Close()
					return err
				}
				ropts.LeaderTasks = append(ropts.LeaderTasks, disp.Task)
				ropts.Deliverer = disp
			}
			runner, err := rotation.NewRunner(setup.engine, ropts)
			if err != nil {
				_ = ln.Close()
				return err
			}
			if disp != nil {
				disp.SetEnqueue(runner.EnqueueDeliveries)
			}
			var reload func(ctx context.Context, actor string) api.ReloadResult
			if file != "" {
				reload = func(ctx context.Context, actor string) api.ReloadResult {
					return a.reloadConfig(ctx, file, maxConfig, setup.store, actor)
				}
			}
			consume, err := a.startConsumeAPI(setup, cfg, dl, runbookDir, reload)
			if err != nil {
				_ = ln.Close()
				return err
			}
			defer consume.stop(ctx)
			var ready atomic.Bool
			mux := a.healthMux(setup, &ready)
			mux.Handle("/v1/", consume.api.TCPHandler())
			mux.Handle("GET /metrics", mx.Handler())
			// Public keys of oauth2-private-key-jwt providers, for
			// authorization servers (no token: public keys only).
			mux.Handle(api.JWKSPath, api.JWKSHandler(setup.store, a.logger))
			dash, err := dashboard.New(dashboard.Options{Store: setup.store, Tokens: apitoken.NewService(setup.store, nil, a.logger),
				Rotator: setup.engine, RunbookDir: runbookDir, Logger: a.logger.With(slog.String("component", "dashboard"))})
			if err != nil {
				_ = ln.Close()
				return err
			}
			mux.Handle("/", dash)
			if tlsCfg == nil && !api.LoopbackAddr(listen) {
				a.logger.Warn("--listen is not a loopback address and no --tls-cert/--tls-key is given: the consume API answers loopback clients only on it",
					slog.String("listen", listen))
			}
			srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, TLSConfig: tlsCfg}
			srvErr := make(chan error, 1)
			go func() {
				if tlsCfg != nil {
					srvErr <- srv.ServeTLS(ln, "", "")
					return
				}
				srvErr <- srv.Serve(ln)
			}()

			if err := runner.Start(ctx); err != nil {
				_ = srv.Close()
				return fmt.Errorf("starting workers: %w", err)
			}
			ready.Store(true)
			if file != "" {
				defer a.reloadOnHUP(ctx, file, maxConfig, setup.store)()
			}
			a.logger.Info("rotator serving", slog.String("listen", ln.Addr().String()), slog.Bool("tls", tlsCfg != nil),
				slog.String("socket", dl.socket), slog.Int("workers", workers), slog.String("database", string(setup.store.Dialect())))

			select {
			case <-ctx.Done():
			case err := <-srvErr:
				if err != nil && !errors.Is(err, http.ErrServerClosed) {
					a.logger.Error("health server failed", slog.String("error", err.Error()))
				}
			}
			ready.Store(false)
			a.logger.Info("shutting down: waiting for running rotations to reach a committed step", slog.Duration("timeout", stopTimeout))
			stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), stopTimeout)
			defer cancel()
			if err := runner.Stop(stopCtx); err != nil {
				a.logger.Warn("workers did not stop in time; interrupted runs resume on the next start", slog.String("error", err.Error()))
			}
			consume.stop(stopCtx)
			_ = srv.Shutdown(stopCtx)
			a.logger.Info("stopped")
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "file", "f", "", "configuration file to apply before serving")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address of the /healthz, /readyz and /metrics endpoints and of the consume API over TCP (API tokens)")
	dl.register(cmd)
	cmd.Flags().IntVar(&workers, "workers", 50, "rotations executed at once by this process")
	cmd.Flags().DurationVar(&jobTimeout, "job-timeout", 4*time.Minute, "longest time one rotation attempt may run")
	cmd.Flags().DurationVar(&rescueAfter, "rescue-after", 5*time.Minute, "resume a rotation whose worker vanished after this long (must exceed --job-timeout)")
	cmd.Flags().DurationVar(&stopTimeout, "stop-timeout", 30*time.Second, "how long shutdown waits for running rotations")
	a.addRetryFlag(cmd)
	maxConfigSizeFlag(cmd.Flags(), &maxConfig)
	return cmd
}

func (a *app) healthMux(setup *engineSetup, ready *atomic.Bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if !ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"starting"}` + "\n"))
			return
		}
		if _, err := setup.store.ListProviders(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"status":"database unavailable"}` + "\n"))
			return
		}
		_, _ = w.Write([]byte(`{"status":"ready"}` + "\n"))
	})
	return mux
}
