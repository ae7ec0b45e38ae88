package main

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// versionInfo is what `rotator version -o json` prints.
func versionInfo() map[string]string {
	info := map[string]string{"version": version, "go": runtime.Version(), "platform": runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				info["commit"] = s.Value
			}
		}
	}
	return info
}

// versionLine is what `rotator version` and `rotator --version` print.
func versionLine() string {
	info := versionInfo()
	return fmt.Sprintf("rotator %s (%s, %s)", info["version"], info["go"], info["platform"])
}

func (a *app) versionCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version of rotator (also: rotator --version)",
		Args:  cobra.NoArgs,
		RunE: func(_ *cobra.Command, _ []string) error {
			if err := checkOutput(output, formatText, formatJSON, formatYAML); err != nil {
				return err
			}
			if isData(output) {
				return writeData(a.stdout, output, versionInfo())
			}
			_, err := fmt.Fprintln(a.stdout, versionLine())
			return err
		},
	}
	outputFlag(cmd, &output, formatText, formatText, formatJSON, formatYAML)
	return cmd
}
