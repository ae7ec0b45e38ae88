package dashboard

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/rotatorhq/rotator/internal/audit"
	"github.com/rotatorhq/rotator/internal/runbook"
	"github.com/rotatorhq/rotator/internal/store"
)

// maxRunbook caps the runbook file the runbook page shows.
const maxRunbook = 1 << 20

type runbookData struct {
	Run  store.Run
	File string
	// Text is the file's content; empty with Missing.
	Text    string
	Missing string
	// Changed is true when the file's digest is not the one the run
	// recorded.
	Changed bool
	Digest  string
}

// runbookPage shows the runbook a run followed: the file that apply
// resolved for its credential, with whether it changed since the run.
func (h *Handler) runbookPage(w http.ResponseWriter, r *http.Request) {
	run, ok := h.getRun(w, r)
	if !ok {
		return
	}
	d := runbookData{Run: run}
	c, err := h.opts.Store.GetCredential(r.Context(), run.CredentialID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		d.Missing = "The credential was removed from the inventory, so where its runbook lives is no longer known."
	case err != nil:
		h.fail(w, r, err, http.StatusInternalServerError, "")
		return
	default:
		d.File = c.RunbookFile
		if d.File == "" && run.Runbook.Path != "" {
			// As the engine finds it: relative to the configuration's
			// directory, or one of its parents.
			ref, err := runbook.Resolve(h.opts.RunbookDir, run.Runbook.Path)
			if err != nil {
				d.Missing = "The runbook file is not found on this host (rotator runbooks check lists missing runbooks)."
				break
			}
			d.File = ref.File
		}
		if d.File == "" {
			d.Missing = "The run recorded no runbook."
			break
		}
		text, err := readRunbook(d.File)
		if err != nil {
			d.Missing = "The runbook file cannot be read on this host: " + err.Error()
			break
		}
		d.Text, d.Digest = string(text), runbook.Digest(text)
		d.Changed = run.Runbook.Digest != "" && d.Digest != run.Runbook.Digest
	}
	h.render(w, r, http.StatusOK, "runbook", page{Title: "Runbook of run " + run.ID, Nav: "runs", Data: d})
}

func readRunbook(file string) ([]byte, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxRunbook+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxRunbook {
		return nil, errors.New("larger than 1 MiB")
	}
	return b, nil
}

// auditCache keeps the last verification, so the audit page shows it
// without reading the whole chain on every view.
type auditCache struct {
	mu   sync.Mutex
	last *verification
	// running serializes verifications: one reads the chain at a time.
	running sync.Mutex
}

type verification struct {
	Report audit.Report
	At     time.Time
	Took   time.Duration
	Error  string
}

type auditData struct {
	Counts store.Counts
	Last   *verification
}

// verifyTimeout bounds a verification asked for from the audit page.
const verifyTimeout = 60 * time.Second

func (h *Handler) auditPage(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.URL.Query().Get("verify") != "" {
		h.audit.running.Lock()
		vctx, cancel := context.WithTimeout(ctx, verifyTimeout)
		start := h.opts.Now()
		opts := audit.VerifyOptions{}
		if h.opts.Store.Dialect() == store.DialectPostgres {
			opts.Parallel = 4
		}
		rep, err := audit.Verify(vctx, h.opts.Store, opts)
		cancel()
		v := &verification{Report: rep, At: start, Took: h.opts.Now().Sub(start)}
		if err != nil {
			v.Error = "the verification did not finish: " + err.Error()
		}
		h.audit.running.Unlock()
		h.audit.mu.Lock()
		h.audit.last = v
		h.audit.mu.Unlock()
		http.Redirect(w, r, "/audit", http.StatusSeeOther)
		return
	}
	counts, err := h.opts.Store.Counts(ctx, h.opts.Now())
	if err != nil {
		h.fail(w, r, err, http.StatusInternalServerError, "")
		return
	}
	h.audit.mu.Lock()
	last := h.audit.last
	h.audit.mu.Unlock()
	h.render(w, r, http.StatusOK, "audit", page{Title: "Audit chain", Nav: "audit", Data: auditData{Counts: counts, Last: last}})
}
