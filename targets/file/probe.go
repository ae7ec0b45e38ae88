package file

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/rotatorhq/rotator/targets"
)

// access(2) modes.
const (
	rOK = 0x4
	wOK = 0x2
	xOK = 0x1
)

// Probe implements targets.Prober without writing: the file's directory
// must exist and be writable and searchable by this user (a missing
// directory must have a writable ancestor: Stage creates it), and an
// existing file must be a readable regular file (Promote keeps its other
// keys).
func (t *Target) Probe(ctx context.Context, _ targets.ProbeRequest) (targets.ProbeResponse, error) {
	if err := ctx.Err(); err != nil {
		return targets.ProbeResponse{}, err
	}
	path, err := filepath.Abs(t.cfg.Path)
	if err != nil {
		return targets.ProbeResponse{}, err
	}
	dir := filepath.Dir(path)
	res := targets.ProbeResponse{}
	existing := dir
	for {
		fi, err := os.Stat(existing)
		if err == nil {
			if !fi.IsDir() {
				return res, targets.NewProbeError(fmt.Errorf("file target: %s is not a directory: %w", existing, targets.ErrPermanent),
					"correct path so that its directory is a directory")
			}
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return res, targets.NewProbeError(fmt.Errorf("file target: %s: %w", existing, unwrapPath(err)), "")
		}
		parent := filepath.Dir(existing)
		if parent == existing {
			break
		}
		existing = parent
	}
	if err := syscall.Access(existing, wOK|xOK); err != nil {
		return res, targets.NewProbeError(fmt.Errorf("file target: directory %s is not writable by this user: %w", existing, err),
			fmt.Sprintf("let the user rotator runs as write %s (chown or chmod u+wx), or point path elsewhere", existing))
	}
	if existing != dir {
		res.Checked = append(res.Checked, fmt.Sprintf("directory %s does not exist yet; %s is writable, so the first rotation creates it", dir, existing))
		return res, nil
	}
	res.Checked = append(res.Checked, fmt.Sprintf("directory %s exists and is writable", dir))
	switch fi, err := os.Stat(path); {
	case errors.Is(err, fs.ErrNotExist):
		res.Checked = append(res.Checked, fmt.Sprintf("%s does not exist yet; the first promotion writes it", path))
	case err != nil:
		return res, targets.NewProbeError(fmt.Errorf("file target: %s: %w", path, unwrapPath(err)), "")
	case !fi.Mode().IsRegular():
		return res, targets.NewProbeError(fmt.Errorf("file target: %s is not a regular file: %w", path, targets.ErrPermanent), "correct path")
	default:
		if err := syscall.Access(path, rOK); err != nil {
			return res, targets.NewProbeError(fmt.Errorf("file target: %s cannot be read by this user: %w", path, err),
				"let the user rotator runs as read it: promotion keeps the other keys it holds")
		}
		res.Checked = append(res.Checked, fmt.Sprintf("%s is a readable file", path))
	}
	return res, nil
}

// unwrapPath drops the *fs.PathError wrapper, whose text repeats the path.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

var _ targets.Prober = (*Target)(nil)
