package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/rotatorhq/rotator/internal/api"
	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/inventory"
	"github.com/rotatorhq/rotator/internal/store"
)

// reloadOnHUP starts applying the configuration file again at every
// SIGHUP, until the returned stop is called, with apply's validation and
// in one transaction: a file with any problem changes nothing (each
// problem is logged, with its file and line); a good one is in the store
// for the scheduler's next pass. The signal is caught from the moment it
// returns.
func (a *app) reloadOnHUP(ctx context.Context, file string, maxSize int64, st store.Store) (stop func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				a.reload(ctx, file, maxSize, st)
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}

// reload is one reload of file (SIGHUP); it reports whether it was
// applied.
func (a *app) reload(ctx context.Context, file string, maxSize int64, st store.Store) bool {
	a.logger.Info("reloading the configuration (SIGHUP)", slog.String("file", file))
	return a.reloadConfig(ctx, file, maxSize, st, "serve (reload)").Applied
}

// reloadMu makes reloads (SIGHUP and POST /v1/config/reload) one at a time.
var reloadMu sync.Mutex

// reloadConfig applies file again with apply's validation, in one
// transaction: a file with any problem changes nothing. Each problem, or
// the outcome, is logged and returned (for POST /v1/config/reload).
func (a *app) reloadConfig(ctx context.Context, file string, maxSize int64, st store.Store, actor string) api.ReloadResult {
	reloadMu.Lock()
	defer reloadMu.Unlock()
	res := api.ReloadResult{File: file}
	log := a.logger.With(slog.String("file", file))
	fail := func(problems ...string) api.ReloadResult {
		for _, p := range problems {
			log.Error("configuration problem", slog.String("problem", p))
		}
		log.Error("configuration not reloaded: nothing changed", slog.Int("problems", len(problems)))
		res.Problems = problems
		return res
	}
	cfg, err := loadConfig(file, maxSize)
	var ce *config.Errors
	switch {
	case errors.As(err, &ce):
		problems := make([]string, len(ce.List))
		for i, e := range ce.List {
			problems[i] = e.Error()
		}
		return fail(problems...)
	case err != nil:
		return fail(a.redactor.Scrub(err.Error()))
	}
	// What apply reports as warnings (apply --strict refuses them).
	cfg.Warnings = append(cfg.Warnings, config.Check(ctx, cfg, config.CheckOptions{})...)
	diff, err := inventory.Apply(ctx, st, cfg, inventory.Options{Actor: actor})
	if err != nil {
		return fail(a.redactor.Scrub(err.Error()))
	}
	for _, w := range diff.Warnings {
		log.Warn("configuration warning", slog.String("warning", w))
	}
	res.Applied, res.Warnings = true, diff.Warnings
	res.Created, res.Updated = diff.Count(inventory.Created), diff.Count(inventory.Updated)
	res.Unchanged, res.Removed = diff.Count(inventory.Unchanged), diff.Count(inventory.Removed)
	log.Info("configuration reloaded", slog.String("actor", actor),
		slog.Int("created", res.Created), slog.Int("updated", res.Updated),
		slog.Int("unchanged", res.Unchanged), slog.Int("removed", res.Removed))
	return res
}
