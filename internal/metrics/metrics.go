// Package metrics exposes rotator's Prometheus metrics (`/metrics` on the
// service's listener): the credential gauges, read from the store at scrape
// time by one collector, and the run, step and scheduler counters and
// histograms, fed by the engine through rotation.Observer. Per-credential
// series carry only the credential, consumer and provider labels (and
// status for rotator_credential_status); no label or value is ever secret.
package metrics

import (
	"context"
	"log/slog"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/rotatorhq/rotator/internal/store"
	"github.com/rotatorhq/rotator/rotation"
)

// Result label values of rotator_rotation_runs_total.
const (
	ResultSucceeded = "succeeded"
	// ResultFailed counts every run that did not succeed: rolled back
	// (current value untouched) or failed.
	ResultFailed = "failed"
)

// statuses are the values of rotator_credential_status's status label.
var statuses = []store.Status{store.StatusNew, store.StatusHealthy, store.StatusDue, store.StatusRotating, store.StatusOverdue,
	store.StatusExpired, store.StatusFailing, store.StatusNeedsAttention}

var triggers = []store.Trigger{store.TriggerSchedule, store.TriggerExpiry, store.TriggerManual, store.TriggerEmergency, store.TriggerAPI}

// Metrics holds the registry. It implements rotation.Observer.
type Metrics struct {
	reg      *prometheus.Registry
	runs     *prometheus.CounterVec
	steps    *prometheus.HistogramVec
	lag      prometheus.Histogram
	log      *slog.Logger
	handler  http.Handler
	snapshot *storeCollector
}

// Options configure New.
type Options struct {
	// Store is read at every scrape (Reader.MetricsSnapshot); it may be
	// given later with ReadFrom (the service opens the store after the
	// engine's observer is built).
	Store store.Reader
	// Now is the clock; time.Now when nil.
	Now func() time.Time
	// Logger receives scrape errors.
	Logger *slog.Logger
	// ScrapeTimeout bounds the store read of one scrape (default 5s).
	ScrapeTimeout time.Duration
}

// New returns the metrics of one process.
func New(opts Options) *Metrics {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.ScrapeTimeout <= 0 {
		opts.ScrapeTimeout = 5 * time.Second
	}
	m := &Metrics{reg: prometheus.NewRegistry(), log: opts.Logger}
	m.runs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rotator_rotation_runs_total",
		Help: "Rotation runs finished by this process, by result (succeeded, failed: rolled back or failed) and trigger.",
	}, []string{"result", "trigger"})
	m.steps = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rotator_rotation_step_duration_seconds",
		Help:    "Duration of rotation steps (mint, activate, verify, stage, cutover, ...) executed by this process.",
		Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
	}, []string{"step"})
	m.lag = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "rotator_scheduler_lag_seconds",
		Help:    "How late scheduled runs started after their credential was due.",
		Buckets: []float64{.1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600},
	})
	for _, r := range []string{ResultSucceeded, ResultFailed} {
		for _, t := range triggers {
			m.runs.WithLabelValues(r, string(t))
		}
	}
	m.snapshot = &storeCollector{now: opts.Now, timeout: opts.ScrapeTimeout, log: opts.Logger}
	if opts.Store != nil {
		m.ReadFrom(opts.Store)
	}
	m.reg.MustRegister(m.runs, m.steps, m.lag, m.snapshot)
	m.handler = promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, ErrorLog: errorLog{opts.Logger}})
	return m
}

// ReadFrom sets the store the gauges are read from; until it is called
// they are absent.
func (m *Metrics) ReadFrom(st store.Reader) { m.snapshot.st.Store(&st) }

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Registry returns the registry (tests gather from it).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// RunFinished implements rotation.Observer.
func (m *Metrics) RunFinished(r rotation.RunFinished) {
	result := ResultFailed
	if r.Succeeded() {
		result = ResultSucceeded
	}
	m.runs.WithLabelValues(result, string(r.Trigger)).Inc()
	if r.Scheduled {
		m.lag.Observe(r.SchedulerLag.Seconds())
	}
}

// StepFinished implements rotation.Observer.
func (m *Metrics) StepFinished(s rotation.StepFinished) {
	m.steps.WithLabelValues(s.Name).Observe(s.Duration.Seconds())
}

var _ rotation.Observer = (*Metrics)(nil)

// errorLog adapts promhttp's error log to slog.
type errorLog struct{ log *slog.Logger }

func (e errorLog) Println(v ...any) {
	e.log.Warn("metrics scrape", slog.Any("error", v))
}

var credLabels = []string{"credential", "consumer", "provider"}

var (
	descAge = prometheus.NewDesc("rotator_credential_age_seconds",
		"Age of the credential's current value (since it was activated).", credLabels, nil)
	descMaxAge = prometheus.NewDesc("rotator_credential_max_age_seconds",
		"The credential's max_age policy.", credLabels, nil)
	descExpiry = prometheus.NewDesc("rotator_credential_expiry_timestamp_seconds",
		"When the credential's current value expires (Unix time); absent when it does not.", credLabels, nil)
	descNext = prometheus.NewDesc("rotator_credential_next_rotation_timestamp_seconds",
		"When the credential is next due for rotation (Unix time).", credLabels, nil)
	descStatus = prometheus.NewDesc("rotator_credential_status",
		"The credential's status: 1 for the status it has, 0 for the others.", append(credLabels[:3:3], "status"), nil)
	descQueue = prometheus.NewDesc("rotator_queue_depth",
		"Rotation runs queued or executing (active runs), across every replica.", nil, nil)
	descUnsealed = prometheus.NewDesc("rotator_audit_unsealed_events",
		"Audit events not yet sealed into the hash chain (the leader's sealer chains them).", nil, nil)
)

// storeCollector reads the gauges from the store at scrape time.
type storeCollector struct {
	st      atomic.Pointer[store.Reader]
	now     func() time.Time
	timeout time.Duration
	log     *slog.Logger
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descAge, descMaxAge, descExpiry, descNext, descStatus, descQueue, descUnsealed} {
		ch <- d
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	st := c.st.Load()
	if st == nil {
		return
	}
	snap, err := (*st).MetricsSnapshot(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(descQueue, err)
		return
	}
	now := c.now()
	ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(snap.ActiveRuns))
	ch <- prometheus.MustNewConstMetric(descUnsealed, prometheus.GaugeValue, float64(snap.UnsealedEvents))
	for _, g := range snap.Credentials {
		lv := []string{g.ID, g.Consumer, g.Provider}
		if g.HasCurrent {
			ch <- prometheus.MustNewConstMetric(descAge, prometheus.GaugeValue, now.Sub(g.Issued).Seconds(), lv...)
		}
		if g.MaxAge > 0 {
			ch <- prometheus.MustNewConstMetric(descMaxAge, prometheus.GaugeValue, g.MaxAge.Seconds(), lv...)
		}
		if !g.ExpiresAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(descExpiry, prometheus.GaugeValue, unix(g.ExpiresAt), lv...)
		}
		if !g.NextRotationAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(descNext, prometheus.GaugeValue, unix(g.NextRotationAt), lv...)
		}
		status := effectiveStatus(g, now)
		for _, s := range statuses {
			v := 0.0
			if s == status {
				v = 1
			}
			ch <- prometheus.MustNewConstMetric(descStatus, prometheus.GaugeValue, v, g.ID, g.Consumer, g.Provider, string(s))
		}
	}
}

// effectiveStatus is the status `credentials list` shows.
func effectiveStatus(g store.CredentialGauge, now time.Time) store.Status {
	c := store.Credential{State: store.CredentialState{Status: g.Status, NextRotationAt: g.NextRotationAt, ExpiresAt: g.ExpiresAt}}
	if g.HasCurrent {
		c.Current = &store.Version{}
	}
	return rotation.EffectiveStatus(c, now)
}

func unix(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }
