package execplugin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/rotatorhq/rotator/internal/settings"
)

// CheckHost checks that the plugin's executable (command[0]) and its dir
// exist on this host and that this user may run it, as the engine will run
// it: a bare name is looked up in PATH, a relative path is relative to dir
// or else to the working directory of the rotator process (which, for the
// service, may differ from the one apply runs in).
func CheckHost(s settings.Map) settings.Errors {
	cfg, errs := parse(s)
	if len(errs) > 0 || len(cfg.Command) == 0 {
		return nil // reported by ValidateProvider
	}
	return checkHost(cfg)
}

// checkHost is CheckHost on parsed settings.
func checkHost(cfg Config) settings.Errors {
	var out settings.Errors
	if cfg.Dir != "" {
		switch fi, err := os.Stat(cfg.Dir); {
		case errors.Is(err, fs.ErrNotExist):
			out = append(out, settings.Error{Field: "dir", Msg: fmt.Sprintf("directory %s does not exist here; create it or correct dir", cfg.Dir)})
			return out
		case err != nil:
			out = append(out, settings.Error{Field: "dir", Msg: fmt.Sprintf("directory %s cannot be read: %v", cfg.Dir, unwrapPath(err))})
			return out
		case !fi.IsDir():
			out = append(out, settings.Error{Field: "dir", Msg: fmt.Sprintf("%s is not a directory; dir must name the directory the plugin runs in", cfg.Dir)})
			return out
		}
	}
	if msg := checkExecutable(cfg.Command[0], cfg.Dir); msg != "" {
		out = append(out, settings.Error{Field: "command[0]", Msg: msg})
	}
	return out
}

// xOK is access(2)'s X_OK: may the real user execute the file.
const xOK = 0x1

// checkExecutable says what keeps name from being run, or "".
func checkExecutable(name, dir string) string {
	path := name
	if !strings.Contains(name, "/") {
		found, err := exec.LookPath(name)
		if err != nil {
			return fmt.Sprintf("executable %s is not in PATH here (%s); give its absolute path or install it", name, os.Getenv("PATH"))
		}
		path = found
	} else if !filepath.IsAbs(name) {
		base := dir
		if base == "" {
			base, _ = os.Getwd()
		}
		path = filepath.Join(base, name)
	}
	where := ""
	if path != name {
		where = " (" + path + ")"
	}
	fi, err := os.Stat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		hint := "correct command[0] or install the plugin there"
		if !filepath.IsAbs(name) {
			hint = "relative paths are resolved against dir, else the working directory of the rotator process that runs rotations; use an absolute path"
		}
		return fmt.Sprintf("executable %s%s does not exist; %s", name, where, hint)
	case err != nil:
		return fmt.Sprintf("executable %s%s cannot be inspected: %v", name, where, unwrapPath(err))
	case !fi.Mode().IsRegular():
		return fmt.Sprintf("%s%s is not a regular file (it is a %s); command[0] must name the plugin's executable", name, where, kindOf(fi.Mode()))
	}
	if err := syscall.Access(path, xOK); err != nil {
		return fmt.Sprintf("%s%s (mode %04o) may not be executed by user %s: %v; make it executable for that user (chmod u+x, or g+x with a shared group)",
			name, where, fi.Mode().Perm(), currentUser(), err)
	}
	return ""
}

func kindOf(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "directory"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "named pipe"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// unwrapPath drops the *fs.PathError wrapper, whose text repeats the path.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func currentUser() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return fmt.Sprintf("uid %d", os.Getuid())
}
