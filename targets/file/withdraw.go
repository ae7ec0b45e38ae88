package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/rotatorhq/rotator/targets"
)

// Withdraw implements targets.Withdrawer: it removes the credential's key
// from a dotenv or JSON file, keeping every other key, atomically; a raw
// file, which holds one credential's value alone, is deleted. A key or file
// that is already gone is success. A key that another credential bound to
// this target also publishes under is left in place (targets.ErrSkipped).
func (t *Target) Withdraw(ctx context.Context, req targets.WithdrawRequest) (targets.WithdrawResponse, error) {
	if err := ctx.Err(); err != nil {
		return targets.WithdrawResponse{}, err
	}
	key := req.Key
	if key == "" {
		key = defaultKey(req.CredentialID)
	}
	for _, o := range req.Others {
		ok := o.Key
		if ok == "" {
			ok = defaultKey(o.CredentialID)
		}
		if t.cfg.Format == FormatRaw || ok == key {
			what := "the file"
			if t.cfg.Format != FormatRaw {
				what = "key " + key
			}
			return targets.WithdrawResponse{}, fmt.Errorf("%w: credential %s also publishes %s of %s; left in place", targets.ErrSkipped, o.CredentialID, what, t.cfg.Path)
		}
	}
	if abs, err := filepath.Abs(t.cfg.Path); err == nil {
		if _, err := os.Stat(filepath.Dir(abs)); errors.Is(err, fs.ErrNotExist) {
			return targets.WithdrawResponse{Detail: fmt.Sprintf("%s was already absent", abs)}, nil
		}
	}
	abs, unlock, err := t.lock(ctx)
	if err != nil {
		return targets.WithdrawResponse{}, err
	}
	defer unlock()

	if t.cfg.Format == FormatRaw {
		switch err := os.Remove(abs); {
		case errors.Is(err, fs.ErrNotExist):
			return targets.WithdrawResponse{Detail: fmt.Sprintf("%s was already absent", abs)}, nil
		case err != nil:
			return targets.WithdrawResponse{}, fmt.Errorf("file target: removing %s: %w", abs, err)
		}
		return targets.WithdrawResponse{Detail: fmt.Sprintf("removed %s", abs)}, nil
	}
	entries, err := t.read(abs)
	if err != nil {
		return targets.WithdrawResponse{}, err
	}
	if _, ok := entries[key]; !ok {
		return targets.WithdrawResponse{Detail: fmt.Sprintf("%s was already absent from %s", key, abs)}, nil
	}
	delete(entries, key)
	content, err := t.encode(entries)
	if err != nil {
		return targets.WithdrawResponse{}, err
	}
	defer clear(content)
	if err := writeAtomic(abs, content, fs.FileMode(t.cfg.Mode)); err != nil {
		return targets.WithdrawResponse{}, err
	}
	return targets.WithdrawResponse{Detail: fmt.Sprintf("removed %s from %s", key, abs)}, nil
}

var _ targets.Withdrawer = (*Target)(nil)
