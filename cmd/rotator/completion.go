package main

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/storeopen"
	"github.com/rotatorhq/rotator/rotation"
)

// completionTimeout bounds the database reads of one completion: a shell
// waiting on a Tab must not hang.
const completionTimeout = 3 * time.Second

// recentRuns is how many of the newest runs complete a run id.
const recentRuns = 50

// registerCompletions adds dynamic shell completion (`rotator completion
// bash|zsh|fish|powershell`) to every command of the tree, by convention, so
// that commands added later get it as well:
//
//   - an argument named ID or CREDENTIAL in a command's Use completes
//     credential ids, one named RUN run ids (the newest first);
//   - --credential completes credential ids, --run run ids, --consumer
//     consumer names, --selector label key=value pairs, --state run states,
//     --log-level and --log-format their values; -f/--file YAML files.
//
// -o completes from outputFlag and addListFlags. Completion reads the
// database only when it exists: it never creates or migrates one.
func (a *app) registerCompletions(root *cobra.Command) {
	flags := map[string]cobra.CompletionFunc{
		"credential": a.completeCredentials,
		"run":        a.completeRuns,
		"consumer":   a.completeConsumers,
		"selector":   a.completeSelector,
		"state":      completeStates,
		"log-level":  cobra.FixedCompletions([]string{"debug", "info", "warn", "error"}, cobra.ShellCompDirectiveNoFileComp),
		"log-format": cobra.FixedCompletions([]string{"text", "json"}, cobra.ShellCompDirectiveNoFileComp),
		"file":       completeYAMLFiles,
	}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.ValidArgsFunction == nil {
			switch argName(c.Use) {
			case "ID", "CREDENTIAL":
				c.ValidArgsFunction = a.completeCredentials
			case "RUN":
				c.ValidArgsFunction = a.completeRuns
			}
		}
		for name, fn := range flags {
			if c.Flags().Lookup(name) == nil && c.PersistentFlags().Lookup(name) == nil {
				continue
			}
			if _, ok := c.GetFlagCompletionFunc(name); !ok {
				_ = c.RegisterFlagCompletionFunc(name, fn)
			}
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(root)
}

// argName returns the first argument placeholder of a Use line without its
// brackets and ellipsis: "show RUN" → "RUN", "rotate [ID...]" → "ID".
func argName(use string) string {
	f := strings.Fields(use)
	if len(f) < 2 {
		return ""
	}
	return strings.TrimSuffix(strings.Trim(f[1], "[]"), "...")
}

// completionStore opens the database (--database, else
// ROTATOR_DATABASE_URL, else ./rotator.db) for reading, only when it exists:
// an SQLite file that is there, or a Postgres URL; ok is false otherwise.
func (a *app) completionStore(ctx context.Context) (store.Store, bool) {
	db, err := storeopen.Resolve(a.databaseFlag)
	if err != nil || db.Dialect == store.DialectSQLite && db.Path == "" {
		return nil, false
	}
	st, err := db.OpenExisting(ctx)
	if err != nil {
		return nil, false
	}
	return st, true
}

// withCredentials calls fn with every live credential, if the database
// exists and answers in time.
func (a *app) withCredentials(cmd *cobra.Command, fn func([]store.Credential)) {
	ctx, cancel := context.WithTimeout(cmdContext(cmd), completionTimeout)
	defer cancel()
	st, ok := a.completionStore(ctx)
	if !ok {
		return
	}
	defer st.Close()
	creds, err := st.ListCredentials(ctx, store.CredentialFilter{})
	if err == nil {
		fn(creds)
	}
}

func cmdContext(cmd *cobra.Command) context.Context {
	if ctx := cmd.Context(); ctx != nil {
		return ctx
	}
	return context.Background()
}

// completeCredentials completes credential ids (described by their
// consumer), skipping those already on the command line.
func (a *app) completeCredentials(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var out []cobra.Completion
	a.withCredentials(cmd, func(creds []store.Credential) {
		for _, c := range creds {
			if strings.HasPrefix(c.ID, toComplete) && !slices.Contains(args, c.ID) {
				out = append(out, cobra.CompletionWithDesc(c.ID, c.Consumer))
			}
		}
	})
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeConsumers completes the consumer names of the inventory.
func (a *app) completeConsumers(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var out []cobra.Completion
	a.withCredentials(cmd, func(creds []store.Credential) {
		seen := map[string]bool{}
		for _, c := range creds {
			if !seen[c.Consumer] && strings.HasPrefix(c.Consumer, toComplete) {
				seen[c.Consumer] = true
				out = append(out, c.Consumer)
			}
		}
	})
	slices.Sort(out)
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeSelector completes key=value label pairs; after a comma it
// completes the next pair of the list.
func (a *app) completeSelector(cmd *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	done, last := "", toComplete
	if i := strings.LastIndexByte(toComplete, ','); i >= 0 {
		done, last = toComplete[:i+1], toComplete[i+1:]
	}
	var out []cobra.Completion
	a.withCredentials(cmd, func(creds []store.Credential) {
		seen := map[string]bool{}
		for _, c := range creds {
			for k, v := range c.Labels {
				kv := k + "=" + v
				if !seen[kv] && strings.HasPrefix(kv, last) && !strings.Contains(","+done, ","+k+"=") {
					seen[kv] = true
					out = append(out, done+kv)
				}
			}
		}
	})
	slices.Sort(out)
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeRuns completes the ids of the newest runs (described by
// credential and state), newest first; a prefix matches in any case.
func (a *app) completeRuns(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	ctx, cancel := context.WithTimeout(cmdContext(cmd), completionTimeout)
	defer cancel()
	directive := cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveKeepOrder
	st, ok := a.completionStore(ctx)
	if !ok {
		return nil, directive
	}
	defer st.Close()
	runs, err := st.ListRuns(ctx, store.RunFilter{Limit: recentRuns})
	if err != nil {
		return nil, directive
	}
	var out []cobra.Completion
	for _, r := range runs {
		if strings.HasPrefix(strings.ToUpper(r.ID), strings.ToUpper(toComplete)) && !slices.Contains(args, r.ID) {
			out = append(out, cobra.CompletionWithDesc(r.ID, r.CredentialID+" "+r.State))
		}
	}
	return out, directive
}

// completeStates completes run states.
func completeStates(_ *cobra.Command, _ []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
	var out []cobra.Completion
	for _, s := range rotation.States {
		if strings.HasPrefix(string(s), toComplete) {
			out = append(out, string(s))
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeYAMLFiles lets the shell complete YAML file names.
func completeYAMLFiles(_ *cobra.Command, _ []string, _ string) ([]cobra.Completion, cobra.ShellCompDirective) {
	return []cobra.Completion{"yaml", "yml"}, cobra.ShellCompDirectiveFilterFileExt
}
