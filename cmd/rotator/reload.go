package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

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

// reload is one reload of file; it reports whether it was applied.
func (a *app) reload(ctx context.Context, file string, maxSize int64, st store.Store) bool {
	log := a.logger.With(slog.String("file", file))
	log.Info("reloading the configuration (SIGHUP)")
	cfg, err := loadConfig(file, maxSize)
	var ce *config.Errors
	switch {
	case errors.As(err, &ce):
		for _, e := range ce.List {
			log.Error("configuration problem", slog.String("problem", e.Error()))
		}
		log.Error("configuration not reloaded: nothing changed", slog.Int("problems", len(ce.List)))
		return false
	case err != nil:
		log.Error("configuration not reloaded: nothing changed", slog.String("error", err.Error()))
		return false
	}
	// What apply reports as warnings (apply --strict refuses them).
	cfg.Warnings = append(cfg.Warnings, config.Check(ctx, cfg, config.CheckOptions{})...)
	diff, err := inventory.Apply(ctx, st, cfg, inventory.Options{Actor: "serve (reload)"})
	if err != nil {
		log.Error("configuration not reloaded: nothing changed", slog.String("error", err.Error()))
		return false
	}
	for _, w := range diff.Warnings {
		log.Warn("configuration warning", slog.String("warning", w))
	}
	log.Info("configuration reloaded",
		slog.Int("created", diff.Count(inventory.Created)), slog.Int("updated", diff.Count(inventory.Updated)),
		slog.Int("unchanged", diff.Count(inventory.Unchanged)), slog.Int("removed", diff.Count(inventory.Removed)))
	return true
}
