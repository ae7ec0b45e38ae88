package proxy

import (
	"bytes"
	"io"
	"net/http"
)

// injector is the upstream's RoundTripper: it sets the credential headers
// on each request and, when the upstream answers 401 and a re-read finds a
// newer version, sends the request once more with it.
type injector struct {
	u    *upstream
	base http.RoundTripper
}

// renderError is a credential value that cannot go into a header.
type renderError struct{ err error }

func (e renderError) Error() string { return e.err.Error() }

// RoundTrip implements http.RoundTripper.
func (t *injector) RoundTrip(req *http.Request) (*http.Response, error) {
	u := t.u
	r := u.current()
	if r.err != nil {
		closeBody(req)
		return nil, renderError{r.err}
	}
	replayable := t.buffer(req)
	r.apply(u, req.Header)
	resp, err := t.base.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	u.p.stats.unauthorized.Add(1)
	if !replayable {
		return resp, nil
	}
	next, changed := u.reread(req, r)
	if !changed {
		return resp, nil
	}
	retry := req.Clone(req.Context())
	if req.GetBody != nil {
		if retry.Body, err = req.GetBody(); err != nil {
			return resp, nil
		}
	}
	// The 401 is dropped: its body is read (a little) so that its
	// connection can carry the retry.
	_, _ = io.CopyN(io.Discard, resp.Body, 4<<10)
	_ = resp.Body.Close()
	next.apply(u, retry.Header)
	u.p.stats.retried.Add(1)
	return t.base.RoundTrip(retry)
}

// buffer keeps the request body in memory, up to the limit, so that the
// request can be sent again; it reports whether it can be.
func (t *injector) buffer(req *http.Request) bool {
	if req.Body == nil || req.Body == http.NoBody {
		return true
	}
	if req.GetBody != nil {
		return true
	}
	limit := t.u.p.opts.MaxRetryBody
	if req.ContentLength > limit {
		return false
	}
	var buf []byte
	var err error
	if req.ContentLength > 0 {
		buf = make([]byte, req.ContentLength)
		var n int
		n, err = io.ReadFull(req.Body, buf)
		buf = buf[:n]
	} else {
		buf, err = io.ReadAll(io.LimitReader(req.Body, limit+1))
	}
	if err != nil || int64(len(buf)) > limit {
		// Too large (or failed): send what was read, then the rest,
		// without a retry.
		req.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(buf), req.Body), req.Body}
		return false
	}
	_ = req.Body.Close()
	req.Body = io.NopCloser(bytes.NewReader(buf))
	req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(buf)), nil }
	req.ContentLength = int64(len(buf))
	return true
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		_ = req.Body.Close()
	}
}

// apply sets the rendered headers on h.
func (r *rendered) apply(u *upstream, h http.Header) {
	for i, ch := range u.headers {
		h[ch.name] = []string{r.values[i]}
	}
}

// reread re-reads the credentials of a rendering the upstream rejected.
// It returns the rendering to retry with, and whether any version changed.
func (u *upstream) reread(req *http.Request, used *rendered) (*rendered, bool) {
	changed := false
	for i, c := range u.creds {
		if _, ch := c.reread(req.Context(), used.curs[i]); ch {
			changed = true
		}
	}
	if !changed {
		return used, false
	}
	r := u.current()
	return r, r.err == nil
}
