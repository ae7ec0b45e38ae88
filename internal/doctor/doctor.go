// Package doctor checks every part a rotator deployment depends on (the
// database and its migrations, the master key, a leading `rotator serve`
// and the backlogs of its leader, each provider's and target's
// connectivity and credentials, the runbooks and the audit chain) and
// names each broken part with what to do about it (`rotator doctor`).
//
// Every check is read-only: doctor creates no database, applies no
// migration, generates no key, mints and publishes nothing. It never shows
// a secret: errors pass through the redactor, which knows every value the
// probed plugins resolved.
package doctor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/rotatorhq/rotator/internal/audit"
	"github.com/rotatorhq/rotator/internal/config"
	"github.com/rotatorhq/rotator/internal/runbook"
	"github.com/rotatorhq/rotator/internal/secret"
	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/internal/store/storeopen"
	"github.com/rotatorhq/rotator/rotation"
)

// Status is the outcome of one check.
type Status string

// Statuses. Only Broken makes the report fail.
const (
	OK      Status = "ok"
	Warn    Status = "warn"
	Broken  Status = "broken"
	Skipped Status = "skipped"
)

// Components checked.
const (
	ComponentDatabase   = "database"
	ComponentMigrations = "migrations"
	ComponentMasterKey  = "master-key"
	ComponentProvider   = "provider"
	ComponentTarget     = "target"
	ComponentRunbook    = "runbook"
	ComponentAudit      = "audit-chain"
	ComponentService    = "service"
)

// Check is the outcome of checking one part. Field names are stable
// (`doctor -o json`).
type Check struct {
	Component string `json:"component"`
	Name      string `json:"name"`
	Status    Status `json:"status"`
	// Detail says what was found; for a broken part, what is wrong.
	Detail string `json:"detail"`
	// Fix says what to do; empty when nothing needs doing.
	Fix string `json:"fix"`
}

// Report is every check, in the order run.
type Report struct {
	Checks   []Check `json:"checks"`
	Broken   int     `json:"broken"`
	Warnings int     `json:"warnings"`
}

// OK reports whether no part is broken.
func (r Report) OK() bool { return r.Broken == 0 }

func (r *Report) add(c Check) {
	r.Checks = append(r.Checks, c)
	switch c.Status {
	case Broken:
		r.Broken++
	case Warn:
		r.Warnings++
	case OK, Skipped:
	}
}

// Options configure Run.
type Options struct {
	// Database names the database for messages (a path, or a URL without
	// its password).
	Database string
	// Open opens the database without creating or migrating it.
	Open func(ctx context.Context) (store.Store, error)
	// MasterKey loads the master key and checks that it opens every stored
	// value, without generating one.
	MasterKey func(ctx context.Context, st store.Store) (secret.Keyring, error)
	// Config, when set, is where providers, targets and credentials (for
	// the runbooks) come from, so they are checked even when the database
	// is unreachable; nil reads them from the database.
	Config *config.Config
	// RunbookDir is the directory relative runbook paths are resolved
	// from; RunbookDirs are directories whose every .md file is checked
	// (default: the runbooks/ directory found from RunbookDir).
	RunbookDir  string
	RunbookDirs []string
	// RunbookMaxAge flags runbooks reviewed longer ago (default 180 days).
	RunbookMaxAge time.Duration
	// Resolver resolves references in plugin settings; Redactor learns the
	// values, and scrubs every message.
	Resolver *secret.Resolver
	Redactor *secret.Redactor
	Logger   *slog.Logger
	// Timeout bounds each check (default 10s).
	Timeout time.Duration
	// Parallel is how many providers and targets are probed at once
	// (default 8).
	Parallel int
	// BacklogAge is how old the oldest item of a backlog of the service's
	// leader (notification events, unsealed audit events, due credentials)
	// may be before it is a warning (default DefaultBacklogAge).
	BacklogAge time.Duration
	// NoService says that no 'rotator serve' is meant to run (rotations
	// start from the CLI and a cron 'rotator runs resume'): the leader
	// check is skipped, and a backlog's fix names runs resume.
	NoService bool
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Run checks every part and returns the report; a part that cannot be
// checked because another is broken (the master key without a database)
// is Skipped.
func Run(ctx context.Context, opts Options) Report {
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	if opts.Parallel <= 0 {
		opts.Parallel = 8
	}
	if opts.RunbookMaxAge <= 0 {
		opts.RunbookMaxAge = 180 * 24 * time.Hour
	}
	if opts.BacklogAge <= 0 {
		opts.BacklogAge = DefaultBacklogAge
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Redactor == nil {
		opts.Redactor = &secret.Redactor{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	d := &doctor{opts: opts}
	st := d.database(ctx)
	if st != nil {
		defer st.Close()
		current := d.migrations(ctx, st)
		d.masterKey(ctx, st)
		d.service(ctx, st, current)
	} else {
		for _, c := range []string{ComponentMigrations, ComponentMasterKey, ComponentService} {
			d.add(Check{Component: c, Name: "-", Status: Skipped, Detail: "needs the database"})
		}
	}
	d.plugins(ctx, st)
	d.runbooks(ctx, st)
	if st != nil {
		d.audit(ctx, st)
	} else {
		d.add(Check{Component: ComponentAudit, Name: "-", Status: Skipped, Detail: "needs the database"})
	}
	return d.rep
}

type doctor struct {
	opts Options
	rep  Report
}

func (d *doctor) add(c Check) {
	c.Detail = d.opts.Redactor.Scrub(c.Detail)
	c.Fix = d.opts.Redactor.Scrub(c.Fix)
	d.rep.add(c)
}

func (d *doctor) timeout(ctx context.Context, what string) (context.Context, context.CancelFunc) {
	return context.WithTimeoutCause(ctx, d.opts.Timeout, fmt.Errorf("%s took longer than %s", what, d.opts.Timeout))
}

// errText is err's message, with the timeout's cause when ctx timed out.
func errText(ctx context.Context, err error) string {
	if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) && errors.Is(err, context.DeadlineExceeded) {
		return fmt.Sprintf("%v: %v", err, cause)
	}
	return err.Error()
}

func (d *doctor) database(ctx context.Context) store.Store {
	cctx, cancel := d.timeout(ctx, "opening the database")
	defer cancel()
	st, err := d.opts.Open(cctx)
	if err != nil {
		fix := "check that the database server is running and reachable from this host, and that --database or ROTATOR_DATABASE_URL names it"
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000") {
			fix = "the database refused the user or password of the database URL: correct the password in ROTATOR_DATABASE_URL (or --database), or the role's password / pg_hba.conf rule"
		} else if errors.Is(err, storeopen.ErrNoDatabase) {
			fix = "create it with 'rotator apply -f FILE' (or 'rotator migrate'), or point --database or ROTATOR_DATABASE_URL at the right database"
		} else if errors.As(err, &pgErr) && pgErr.Code == "3D000" {
			fix = "the database named in the URL does not exist: create it (createdb) or correct the URL"
		}
		d.add(Check{Component: ComponentDatabase, Name: d.opts.Database, Status: Broken, Detail: errText(cctx, err), Fix: fix})
		return nil
	}
	d.add(Check{Component: ComponentDatabase, Name: d.opts.Database, Status: OK, Detail: fmt.Sprintf("opened the %s database", st.Dialect())})
	return st
}

// migrations checks the migrations and reports whether rotator's are
// current (every table this binary reads exists).
func (d *doctor) migrations(ctx context.Context, st store.Store) bool {
	cctx, cancel := d.timeout(ctx, "reading the migrations")
	defer cancel()
	m, err := rotation.MigrationStatus(cctx, st)
	c := Check{Component: ComponentMigrations, Name: string(st.Dialect())}
	switch {
	case err != nil:
		c.Status, c.Detail, c.Fix = Broken, errText(cctx, err), "check that the database user may read the schema"
	case len(m.Unknown) > 0:
		c.Status = Broken
		c.Detail = fmt.Sprintf("the database has migrations %v that this rotator (up to %d) does not know: a newer rotator migrated it", m.Unknown, m.Latest)
		c.Fix = "run the rotator version that migrated it (or newer); never run an older binary against it"
	case m.Pending > 0 || len(m.QueueProblems) > 0:
		c.Status = Warn
		parts := []string{}
		if m.Pending > 0 {
			parts = append(parts, fmt.Sprintf("%d rotator migration(s) pending (at %d of %d)", m.Pending, m.Current, m.Latest))
		}
		parts = append(parts, m.QueueProblems...)
		c.Detail = strings.Join(parts, "; ")
		c.Fix = "run 'rotator migrate' (serve and every command that opens the database also apply them)"
	default:
		c.Status, c.Detail = OK, fmt.Sprintf("at migration %d of %d; job queue tables current", m.Current, m.Latest)
	}
	d.add(c)
	return err == nil && m.Pending == 0 && len(m.Unknown) == 0
}

func (d *doctor) masterKey(ctx context.Context, st store.Store) {
	cctx, cancel := d.timeout(ctx, "checking the master key")
	defer cancel()
	c := Check{Component: ComponentMasterKey, Name: "-"}
	kr, err := d.opts.MasterKey(cctx, st)
	switch {
	case errors.Is(err, secret.ErrNoMasterKey) && st.Dialect() == store.DialectSQLite:
		c.Status, c.Detail = Warn, "no master key is configured and no value is sealed yet"
		c.Fix = "serve generates a key file beside the database on first start; back it up, or set ROTATOR_MASTER_KEY_FILE"
	case err != nil:
		c.Status, c.Detail = Broken, errText(cctx, err)
		if errors.Is(err, secret.ErrNoMasterKey) {
			c.Fix = "set ROTATOR_MASTER_KEY_FILE (or ROTATOR_MASTER_KEY) to base64 of 32 random bytes, e.g. openssl rand -base64 32"
		} else if !strings.Contains(c.Detail, "To fix") {
			c.Fix = "see runbooks/master-key-rotation.md"
		}
	default:
		sealed, _ := st.SealedKeyIDs(cctx)
		c.Name, c.Status = kr.ActiveKeyID(), OK
		c.Detail = fmt.Sprintf("active key %s; the configured keys open every stored value (sealed under %d key id(s))", kr.ActiveKeyID(), len(sealed))
	}
	d.add(c)
}

func (d *doctor) audit(ctx context.Context, st store.Store) {
	rep, err := audit.Verify(ctx, st, audit.VerifyOptions{})
	c := Check{Component: ComponentAudit, Name: "-"}
	switch {
	case err != nil:
		c.Status, c.Detail, c.Fix = Broken, "reading the audit events: "+err.Error(), "check the database"
	case !rep.OK:
		c.Status, c.Detail = Broken, rep.Problem.Message
		c.Fix = "the audit log was altered: run 'rotator audit verify' for the details, compare with a recorded head, restore from backup (see docs/audit.md)"
	default:
		c.Status = OK
		c.Detail = fmt.Sprintf("%d sealed event(s) verified (head seq %d); %d not sealed yet", rep.Checked, rep.HeadSeq, rep.Unsealed)
	}
	d.add(c)
}

// runbooks checks every credential's runbook link and the runbook files.
func (d *doctor) runbooks(ctx context.Context, st store.Store) {
	var creds []runbook.CredentialRef
	switch {
	case d.opts.Config != nil:
		for _, c := range d.opts.Config.Credentials {
			creds = append(creds, runbook.CredentialRef{ID: c.ID, Ref: c.Runbook})
		}
	case st != nil:
		var err error
		if creds, err = storedRunbooks(ctx, st); err != nil {
			d.add(Check{Component: ComponentRunbook, Name: "-", Status: Broken, Detail: "listing credentials: " + err.Error(), Fix: "check the database"})
			return
		}
	default:
		d.add(Check{Component: ComponentRunbook, Name: "-", Status: Skipped, Detail: "needs the database, or a configuration file (-f)"})
		return
	}
	base := d.opts.RunbookDir
	if base == "" {
		base = "."
	}
	dirs := d.opts.RunbookDirs
	if len(dirs) == 0 {
		if dir, ok := runbook.FindDir(base, "runbooks"); ok {
			dirs = []string{dir}
		}
	}
	res, err := runbook.Check(creds, base, dirs, d.opts.RunbookMaxAge, d.opts.Now().UTC())
	if err != nil {
		d.add(Check{Component: ComponentRunbook, Name: "-", Status: Broken, Detail: err.Error(), Fix: "correct the runbook directory"})
		return
	}
	bad := 0
	for _, l := range res.Credentials {
		if l.Problem != nil {
			bad++
			d.add(Check{Component: ComponentRunbook, Name: l.Credential, Status: Broken, Detail: *l.Problem,
				Fix: "write the runbook (file and heading) or correct the credential's runbook: reference and apply; if it exists elsewhere, point --runbook-dir (or -f) where serve resolves runbooks"})
		}
	}
	for _, f := range res.Runbooks {
		if len(f.Problems) > 0 {
			bad++
			d.add(Check{Component: ComponentRunbook, Name: f.File, Status: Warn, Detail: strings.Join(f.Problems, "; "),
				Fix: "update the front matter (id, version, owner, reviewed) after reviewing the runbook"})
		}
	}
	if bad == 0 {
		d.add(Check{Component: ComponentRunbook, Name: "-", Status: OK,
			Detail: fmt.Sprintf("%d credential link(s) resolve; %d runbook file(s) have current front matter", len(res.Credentials), len(res.Runbooks))})
	}
}

func storedRunbooks(ctx context.Context, st store.Store) ([]runbook.CredentialRef, error) {
	var out []runbook.CredentialRef
	after := ""
	for {
		page, err := st.ListCredentials(ctx, store.CredentialFilter{AfterID: after, Limit: 1000})
		if err != nil {
			return nil, err
		}
		for _, c := range page {
			out = append(out, runbook.CredentialRef{ID: c.ID, Ref: c.Runbook})
		}
		if len(page) < 1000 {
			return out, nil
		}
		after = page[len(page)-1].ID
	}
}

// plugins probes every provider and target, a few at a time.
func (d *doctor) plugins(ctx context.Context, st store.Store) {
	type job func(ctx context.Context) rotation.ProbeResult
	var jobs []job
	e := rotation.NewForProbe(rotation.Options{Store: st, Resolver: d.opts.Resolver, Redactor: d.opts.Redactor, Logger: d.opts.Logger})
	defer e.Close()
	switch {
	case d.opts.Config != nil:
		for _, name := range sortedKeys(d.opts.Config.Providers) {
			p := d.opts.Config.Providers[name]
			row := store.Provider{Name: p.Name, Type: p.Type, Settings: p.Settings}
			jobs = append(jobs, func(ctx context.Context) rotation.ProbeResult { return e.ProbeProvider(ctx, row) })
		}
		for _, name := range sortedKeys(d.opts.Config.Targets) {
			t := d.opts.Config.Targets[name]
			row := store.Target{Name: t.Name, Type: t.Type, Settings: t.Settings}
			jobs = append(jobs, func(ctx context.Context) rotation.ProbeResult { return e.ProbeTarget(ctx, row) })
		}
	case st != nil:
		provs, err := st.ListProviders(ctx)
		if err != nil {
			d.add(Check{Component: ComponentProvider, Name: "-", Status: Broken, Detail: "listing providers: " + err.Error(), Fix: "check the database"})
		}
		for _, p := range provs {
			jobs = append(jobs, func(ctx context.Context) rotation.ProbeResult { return e.Probe(ctx, rotation.KindProvider, p.Name) })
		}
		tgts, err := st.ListTargets(ctx)
		if err != nil {
			d.add(Check{Component: ComponentTarget, Name: "-", Status: Broken, Detail: "listing targets: " + err.Error(), Fix: "check the database"})
		}
		for _, t := range tgts {
			jobs = append(jobs, func(ctx context.Context) rotation.ProbeResult { return e.Probe(ctx, rotation.KindTarget, t.Name) })
		}
	default:
		for _, c := range []string{ComponentProvider, ComponentTarget} {
			d.add(Check{Component: c, Name: "-", Status: Skipped, Detail: "needs the database, or a configuration file (-f)"})
		}
		return
	}
	results := make([]Check, len(jobs))
	sem := make(chan struct{}, d.opts.Parallel)
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			cctx, cancel := d.timeout(ctx, "the probe")
			defer cancel()
			results[i] = probeCheck(cctx, j(cctx))
		}()
	}
	wg.Wait()
	for _, c := range results {
		d.add(c)
	}
}

// probeCheck turns a probe result into a check.
func probeCheck(ctx context.Context, r rotation.ProbeResult) Check {
	c := Check{Component: string(r.Kind), Name: r.Name, Status: OK}
	if !r.OK() {
		c.Status, c.Detail, c.Fix = Broken, r.Error, r.Fix
		if cause := context.Cause(ctx); cause != nil && !strings.Contains(c.Detail, cause.Error()) {
			c.Detail += ": " + cause.Error()
		}
		if c.Fix == "" {
			c.Fix = fmt.Sprintf("check the %s's settings and that what it names is reachable from this host", r.Kind)
		}
		return c
	}
	c.Detail = strings.Join(r.Checked, "; ")
	if len(r.Unproven) > 0 {
		c.Detail += "; not proven without a rotation: " + strings.Join(r.Unproven, "; ")
	}
	if r.Type != "" {
		c.Detail = r.Type + ": " + c.Detail
	}
	return c
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
