package main

import (
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/rotatorhq/rotator/internal/bytesize"
	"github.com/rotatorhq/rotator/internal/config"
)

// maxConfigSizeFlag adds --max-config-size, the largest configuration file
// a command reads, to a command's flags.
func maxConfigSizeFlag(fs *pflag.FlagSet, p *int64) {
	*p = config.DefaultMaxFileSize
	fs.Var(bytesize.Value{N: p}, "max-config-size",
		"largest configuration file to read, such as 64MiB (a larger one is rejected before parsing)")
}

// configSizeError turns a file over --max-config-size into a usage error
// that says how to raise the limit; other errors are returned as they are.
func configSizeError(err error) error {
	var tooLarge *config.FileTooLargeError
	if !errors.As(err, &tooLarge) {
		return err
	}
	const step = 16 << 20
	suggest := (tooLarge.Size + step - 1) / step * step
	return usageError{fmt.Errorf("%w; to read it, raise the limit with --max-config-size (for example --max-config-size %s)",
		err, bytesize.Value{N: &suggest})}
}
