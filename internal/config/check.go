package config

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/settings"
)

// CheckOptions tune Check.
type CheckOptions struct {
	// Resolver resolves references; nil means a zero secret.Resolver (the
	// process environment, files, AWS Secrets Manager through the standard
	// AWS configuration).
	Resolver *secret.Resolver
	// Timeout bounds the resolution of one reference (default 10s), so an
	// unreachable AWS endpoint cannot hold apply up.
	Timeout time.Duration
	// Parallel is how many references are resolved at once (default 8).
	Parallel int
}

// Check does, on this host, what validation cannot do without leaving the
// file: it resolves every reference in provider and target settings and
// runs each provider type's host check (an exec plugin's executable exists
// and may be run). It returns every problem found, sorted by line, each as
// file:line: field: what is wrong and what would fix it. A resolved value
// is never kept, printed or part of a message.
//
// apply reports these as warnings (errors with --strict): apply may run on
// another host, or as another user, than the service that resolves the
// references at each run.
func Check(ctx context.Context, cfg *Config, opts CheckOptions) []Error {
	if opts.Resolver == nil {
		opts.Resolver = &secret.Resolver{}
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 8
	}
	type use struct {
		line  int
		field string
	}
	uses := map[string][]use{} // by reference
	var out []Error
	visit := func(section, name, typ string, s settings.Map, lines map[string]int, line int) {
		base := join(section, name)
		walkRefs(s, "", func(rel, ref string) {
			uses[ref] = append(uses[ref], use{line: fieldLine(lines, rel, line), field: settingsPath(base, rel)})
		})
		if section != "providers" {
			return
		}
		f, ok := builtin.provider(typ)
		if !ok || f.CheckHost == nil {
			return
		}
		for _, e := range f.CheckHost(s) {
			out = append(out, errorf(cfg.File, fieldLine(lines, e.Field, line), settingsPath(base, e.Field), "%s", e.Msg))
		}
	}
	for _, name := range cfg.ProviderNames() {
		p := cfg.Providers[name]
		visit("providers", name, p.Type, p.Settings, p.Lines, p.Line)
	}
	for _, name := range cfg.TargetNames() {
		t := cfg.Targets[name]
		visit("targets", name, t.Type, t.Settings, t.Lines, t.Line)
	}

	refs := slices.Sorted(func(yield func(string) bool) {
		for r := range uses {
			if !yield(r) {
				return
			}
		}
	})
	problems := make([]string, len(refs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, opts.Parallel)
	for i, ref := range refs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			problems[i] = resolveProblem(ctx, opts, ref)
		}()
	}
	wg.Wait()
	for i, ref := range refs {
		if problems[i] == "" {
			continue
		}
		for _, u := range uses[ref] {
			out = append(out, Error{File: cfg.File, Line: u.line, Field: u.field, Msg: problems[i]})
		}
	}
	slices.SortStableFunc(out, func(a, b Error) int {
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Field, b.Field))
	})
	return out
}

// settingsPath joins a settings-relative path (verify.introspection.url,
// command[0]) to the dotted path of its provider or target.
func settingsPath(base, rel string) string {
	if rel == "" {
		return base
	}
	if strings.HasPrefix(rel, "[") {
		return base + rel
	}
	return base + "." + rel
}

// walkRefs calls fn with the path (as Provider.Lines keys it) of every
// string in v that is a reference.
func walkRefs(v any, path string, fn func(rel, ref string)) {
	switch x := v.(type) {
	case string:
		if secret.IsRef(x) {
			fn(path, x)
		}
	case settings.Map:
		walkRefs(map[string]any(x), path, fn)
	case map[string]any:
		for _, k := range slices.Sorted(func(yield func(string) bool) {
			for k := range x {
				if !yield(k) {
					return
				}
			}
		}) {
			sub := k
			if path != "" {
				sub = path + "." + k
			}
			walkRefs(x[k], sub, fn)
		}
	case []any:
		for i, e := range x {
			walkRefs(e, index(path, i), fn)
		}
	}
}

// resolveProblem resolves ref and returns what is wrong with it and how to
// fix it, or "" when it resolves to a non-empty value. The value is
// dropped at once; the message is scrubbed of it all the same.
func resolveProblem(ctx context.Context, opts CheckOptions, s string) string {
	ref, err := secret.ParseRef(s)
	if err != nil {
		return err.Error() // reported by validation already; kept for completeness
	}
	rctx, cancel := context.WithTimeoutCause(ctx, opts.Timeout, fmt.Errorf("gave up after %s", opts.Timeout))
	defer cancel()
	v, err := opts.Resolver.Resolve(rctx, ref)
	if err == nil {
		return ""
	}
	if c := context.Cause(rctx); c != nil && ctx.Err() == nil {
		err = fmt.Errorf("%w: %w", c, err)
	}
	return secret.ScrubError(fmt.Errorf("%s", refProblem(ref, err)), v).Error()
}

// refProblem describes a failed resolution with what would fix it.
func refProblem(ref secret.Ref, err error) string {
	switch {
	case errors.Is(err, secret.ErrEmptyValue):
		return fmt.Sprintf("%s resolves to an empty value here; put the secret there", ref)
	case ref.Scheme == secret.SchemeEnv && errors.Is(err, secret.ErrRefNotFound):
		return fmt.Sprintf("%s cannot be resolved here: environment variable %s is not set; set it in the environment rotator runs in (the service and the CLI), or use a ${file:...} reference", ref, ref.Path)
	case ref.Scheme == secret.SchemeFile && errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("%s cannot be resolved here: file %s does not exist; create it (mode 0600, owned by the user rotator runs as) or correct the path", ref, ref.Path)
	case ref.Scheme == secret.SchemeFile && errors.Is(err, fs.ErrPermission):
		return fmt.Sprintf("%s cannot be resolved here: user %s may not read file %s; make it readable by the user rotator runs as", ref, userName(), ref.Path)
	case ref.Scheme == secret.SchemeAWSSecretsManager && errors.Is(err, secret.ErrRefNotFound):
		return fmt.Sprintf("%s cannot be resolved here: %v; create the secret (or its JSON key) or correct the reference", ref, err)
	case ref.Scheme == secret.SchemeAWSSecretsManager:
		return fmt.Sprintf("%s cannot be resolved here: %v; check this host's AWS credentials, region and network access", ref, err)
	}
	return fmt.Sprintf("%s cannot be resolved here: %v", ref, err)
}

func userName() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return "uid " + strconv.Itoa(os.Getuid())
}
