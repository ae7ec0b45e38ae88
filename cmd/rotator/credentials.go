package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/view"
)

func (a *app) credentialsCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "credentials",
		Aliases: []string{"credential", "creds"},
		Short:   "Inspect the credential inventory",
	}
	cmd.AddCommand(a.credentialsListCommand(), a.credentialsShowCommand())
	return cmd
}

func (a *app) credentialsListCommand() *cobra.Command {
	var (
		lo        listOutput
		selectors []string
		consumer  string
	)
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List credentials with their scope, age and next rotation",
		Example: `  rotator credentials list
  rotator credentials list --selector team=platform,env=prod -o wide
  rotator credentials list --consumer mcp-server-github -o json
  rotator credentials list -q --selector env=prod   # ids only`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := lo.check(); err != nil {
				return err
			}
			labels, err := parseSelector(selectors)
			if err != nil {
				return err
			}
			st, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			creds, err := st.ListCredentials(cmd.Context(), store.CredentialFilter{Consumer: consumer, Labels: labels, Summary: true})
			if err != nil {
				return fmt.Errorf("listing credentials: %w", err)
			}
			now := time.Now().UTC()
			views := make([]view.Credential, 0, len(creds))
			for _, c := range creds {
				views = append(views, view.NewCredential(c, now))
			}
			if isData(lo.format) {
				return writeData(a.stdout, lo.format, map[string]any{"credentials": views})
			}
			return a.printCredentialList(lo, views, now)
		},
	}
	addListFlags(cmd, &lo)
	cmd.Flags().StringSliceVar(&selectors, "selector", nil, "only credentials whose labels match key=value (repeatable, comma-separated)")
	cmd.Flags().StringVar(&consumer, "consumer", "", "only credentials used by this MCP server or client")
	return cmd
}

func (a *app) printCredentialList(lo listOutput, views []view.Credential, now time.Time) error {
	t := a.newListTable(lo,
		column{name: "ID", flex: true, id: true},
		column{name: "CONSUMER", flex: true},
		column{name: "PROVIDER", flex: true, wide: true},
		column{name: "SCOPE", flex: true},
		column{name: "AGE"},
		column{name: "MAX AGE", wide: true},
		column{name: "LAST ROTATED", wide: true},
		column{name: "NEXT ROTATION"},
		column{name: "STATUS", colour: stateColour},
		column{name: "OWNER", wide: true},
		column{name: "LABELS", wide: true},
	)
	for _, v := range views {
		age := "-"
		if v.AgeSeconds != nil {
			age = humanDuration(time.Duration(*v.AgeSeconds) * time.Second)
		}
		t.row(v.ID, v.Consumer, v.Provider, orDash(strings.Join(v.Scope, ",")), age, secondsDuration(v.MaxAgeSeconds),
			relTime(v.LastRotatedAt, now), relTime(v.NextRotationAt, now), v.Status, orDash(v.Owner), orDash(labelText(v.Labels, ",")))
	}
	return t.flush()
}

// labelText renders labels as sorted k=v pairs.
func labelText(labels map[string]string, sep string) string {
	parts := make([]string, 0, len(labels))
	for k, v := range labels {
		parts = append(parts, k+"="+v)
	}
	return strings.Join(sortedStrings(parts), sep)
}

func (a *app) credentialsShowCommand() *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Show one credential: policy, state, versions and provider capabilities",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, formatText, formatJSON, formatYAML); err != nil {
				return err
			}
			st, err := a.openStore(cmd.Context())
			if err != nil {
				return err
			}
			defer st.Close()
			ctx := cmd.Context()
			c, err := st.GetCredential(ctx, args[0])
			if errors.Is(err, store.ErrNotFound) {
				return notFoundf("credential %q not found; see 'rotator credentials list'", args[0])
			}
			if err != nil {
				return fmt.Errorf("reading credential %s: %w", args[0], err)
			}
			now := time.Now().UTC()
			v, err := view.NewCredentialDetail(ctx, st, c, now)
			if err != nil {
				return err
			}
			if isData(output) {
				return writeData(a.stdout, output, map[string]any{"credential": v})
			}
			return a.printCredential(v, now)
		},
	}
	outputFlag(cmd, &output, formatText, formatText, formatJSON, formatYAML)
	return cmd
}

func (a *app) printCredential(v view.Credential, now time.Time) error {
	w := a.stdout
	age := "-"
	if v.AgeSeconds != nil {
		age = humanDuration(time.Duration(*v.AgeSeconds) * time.Second)
	}
	fmt.Fprintf(w, "ID:             %s\n", v.ID)
	fmt.Fprintf(w, "Consumer:       %s\n", v.Consumer)
	fmt.Fprintf(w, "Provider:       %s\n", v.Provider)
	fmt.Fprintf(w, "Owner:          %s\n", v.Owner)
	fmt.Fprintf(w, "Labels:         %s\n", labelText(v.Labels, ", "))
	fmt.Fprintf(w, "Scope:          %s\n", strings.Join(v.Scope, ", "))
	fmt.Fprintf(w, "Granted scope:  %s\n", grantedScopeText(v))
	fmt.Fprintf(w, "Status:         %s\n", v.Status)
	fmt.Fprintf(w, "Age:            %s (max %s)\n", age, secondsDuration(v.MaxAgeSeconds))
	if v.Schedule != "" {
		fmt.Fprintf(w, "Schedule:       %s\n", v.Schedule)
	}
	fmt.Fprintf(w, "Grace:          %s\n", secondsDuration(v.GraceSeconds))
	fmt.Fprintf(w, "Last rotated:   %s\n", relTime(v.LastRotatedAt, now))
	fmt.Fprintf(w, "Next rotation:  %s\n", relTime(v.NextRotationAt, now))
	fmt.Fprintf(w, "Runbook:        %s\n", v.Runbook)
	if c := v.Capabilities; c != nil {
		fmt.Fprintf(w, "Capabilities:   overlap=%t revocable=%t scope_aware=%t\n", c.Overlap, c.Revocable, c.ScopeAware)
	}
	for _, tb := range v.Targets {
		fmt.Fprintf(w, "Target:         %s %s\n", tb.Target, tb.Key)
	}
	if len(v.Versions) > 0 {
		fmt.Fprintln(w, "Versions:")
		t := a.newTextTable(column{name: "  ID"}, column{name: "STAGE", colour: versionStageColour},
			column{name: "FINGERPRINT"}, column{name: "CREATED"}, column{name: "EXPIRES"})
		for _, ver := range v.Versions {
			t.row("  "+ver.ID, ver.Stage, ver.Fingerprint, ver.CreatedAt.Format(time.RFC3339), relTime(ver.ExpiresAt, now))
		}
		if err := t.flush(); err != nil {
			return err
		}
		return printValueHashes(w, v.Versions)
	}
	return nil
}

func sortedStrings(s []string) []string {
	return slices.Sorted(slices.Values(s))
}

// versionStageColour colours the current version.
func versionStageColour(stage string) string {
	if stage == "current" {
		return colourGreen
	}
	return ""
}
