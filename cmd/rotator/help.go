package main

import (
	"strconv"
	"strings"
)

// maxHelpWidth is the widest a line of --help may be; a golden test holds
// every command's help to it.
const maxHelpWidth = 100

// helpWidth is the width flag descriptions are wrapped to: the terminal's
// when it is narrower than maxHelpWidth.
func helpWidth(t terminal) int {
	if t.width > 0 && t.width < maxHelpWidth {
		return t.width
	}
	return maxHelpWidth
}

// usageTemplate is cobra's default usage template with the flag
// descriptions wrapped to width columns.
func usageTemplate(width int) string {
	w := strconv.Itoa(width)
	return strings.NewReplacer(
		"{{.LocalFlags.FlagUsages", "{{.LocalFlags.FlagUsagesWrapped "+w,
		"{{.InheritedFlags.FlagUsages", "{{.InheritedFlags.FlagUsagesWrapped "+w,
	).Replace(cobraUsageTemplate)
}

// cobraUsageTemplate is cobra's default usage template (v1.10).
const cobraUsageTemplate = `Usage:{{if .Runnable}}
  {{.UseLine}}{{end}}{{if .HasAvailableSubCommands}}
  {{.CommandPath}} [command]{{end}}{{if gt (len .Aliases) 0}}

Aliases:
  {{.NameAndAliases}}{{end}}{{if .HasExample}}

Examples:
{{.Example}}{{end}}{{if .HasAvailableSubCommands}}{{$cmds := .Commands}}{{if eq (len .Groups) 0}}

Available Commands:{{range $cmds}}{{if (or .IsAvailableCommand (eq .Name "help"))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{else}}{{range $group := .Groups}}

{{.Title}}{{range $cmds}}{{if (and (eq .GroupID $group.ID) (or .IsAvailableCommand (eq .Name "help")))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{if not .AllChildCommandsHaveGroup}}

Additional Commands:{{range $cmds}}{{if (and (eq .GroupID "") (or .IsAvailableCommand (eq .Name "help")))}}
  {{rpad .Name .NamePadding }} {{.Short}}{{end}}{{end}}{{end}}{{end}}{{end}}{{if .HasAvailableLocalFlags}}

Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasAvailableInheritedFlags}}

Global Flags:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}{{end}}{{if .HasHelpSubCommands}}

Additional help topics:{{range .Commands}}{{if .IsAdditionalHelpTopicCommand}}
  {{rpad .CommandPath .CommandPathPadding}} {{.Short}}{{end}}{{end}}{{end}}{{if .HasAvailableSubCommands}}

Use "{{.CommandPath}} [command] --help" for more information about a command.{{end}}
`
