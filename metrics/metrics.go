// Package metrics holds the Prometheus metrics of mailsec serve and serves
// them over HTTP. Package server feeds it: connections and TLS handshakes
// from its listener and TLS configuration wrappers, logins, messages and
// POP3 retrievals from the Observer hooks of smtpd and pop3d, which the
// servers call at each event.
package metrics

import (
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics is one set of mailsec serve metrics in its own registry.
type Metrics struct {
	reg            *prometheus.Registry
	connections    *prometheus.CounterVec
	tlsHandshakes  *prometheus.CounterVec
	auth           *prometheus.CounterVec
	messages       *prometheus.CounterVec
	bytesReceived  prometheus.Counter
	deliveryTime   prometheus.Histogram
	retrievals     *prometheus.CounterVec
	retrievedBytes *prometheus.CounterVec
	outbound       *prometheus.CounterVec
	outboundTime   prometheus.Histogram
}

// New makes the metrics, plus the Go runtime and process collectors (heap,
// goroutines, RSS, open file descriptors).
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		connections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailsec_connections_total",
			Help: "Connections accepted, per listener.",
		}, []string{"listener", "kind"}),
		tlsHandshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailsec_tls_handshakes_total",
			Help: "Completed TLS handshakes per listener, TLS version and mode (starttls: a STARTTLS/STLS upgrade; implicit: SMTPS/POP3S).",
		}, []string{"listener", "version", "mode"}),
		auth: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailsec_auth_total",
			Help: "Login attempts per listener, mechanism (USER is POP3 USER/PASS) and result (success, failure).",
		}, []string{"listener", "mechanism", "result"}),
		messages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailsec_messages_total",
			Help: "Messages received over SMTP by result (accepted, rejected) and reason class of a rejection (size, content, transfer, store).",
		}, []string{"result", "reason"}),
		bytesReceived: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailsec_received_bytes_total",
			Help: "Message octets received over SMTP, accepted or not.",
		}),
		deliveryTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mailsec_delivery_seconds",
			Help:    "Time from the last octet of a message to its durable storage (what the 250 reply waits for).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
		retrievals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailsec_pop3_retrievals_total",
			Help: "Messages retrieved with POP3 RETR, per listener.",
		}, []string{"listener"}),
		retrievedBytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailsec_pop3_retrieved_bytes_total",
			Help: "Message octets read for POP3 RETR, per listener.",
		}, []string{"listener"}),
		outbound: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailsec_relay_deliveries_total",
			Help: "Outbound delivery outcomes per recipient and attempt, by result (delivered, deferred, bounced) and transport security (none, tls: encrypted but not verified, verified, local).",
		}, []string{"result", "tls"}),
		outboundTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "mailsec_relay_delivery_seconds",
			Help:    "Time from a message's arrival in the queue to its delivery, per delivered recipient.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 14),
		}),
	}
	m.reg.MustRegister(m.connections, m.tlsHandshakes, m.auth, m.messages, m.bytesReceived, m.deliveryTime,
		m.retrievals, m.retrievedBytes, m.outbound, m.outboundTime,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Connection counts an accepted connection.
func (m *Metrics) Connection(listener, kind string) {
	m.connections.WithLabelValues(listener, kind).Inc()
}

// TLSHandshake counts a completed handshake; implicit is true for SMTPS
// and POP3S, false for a STARTTLS or STLS upgrade.
func (m *Metrics) TLSHandshake(listener, version string, implicit bool) {
	mode := "starttls"
	if implicit {
		mode = "implicit"
	}
	m.tlsHandshakes.WithLabelValues(listener, version, mode).Inc()
}

// Auth counts a login attempt.
func (m *Metrics) Auth(listener, mechanism string, ok bool) {
	result := "failure"
	if ok {
		result = "success"
	}
	m.auth.WithLabelValues(listener, mechanism, result).Inc()
}

// Message counts a message received in full (accepted) or refused, with
// reason as the class of the refusal.
func (m *Metrics) Message(octets int64, accepted bool, reason string) {
	m.bytesReceived.Add(float64(octets))
	if accepted {
		m.messages.WithLabelValues("accepted", "").Inc()
		return
	}
	m.messages.WithLabelValues("rejected", reason).Inc()
}

// Delivered records how long storing an accepted message took.
func (m *Metrics) Delivered(d time.Duration) { m.deliveryTime.Observe(d.Seconds()) }

// Retrieved counts one message retrieved in full with POP3 RETR.
func (m *Metrics) Retrieved(listener string, octets int64) {
	m.retrievals.WithLabelValues(listener).Inc()
	m.retrievedBytes.WithLabelValues(listener).Add(float64(octets))
}

// Outbound counts one recipient's delivery outcome and, when delivered,
// how long it took from arrival.
func (m *Metrics) Outbound(result, tls string, latency time.Duration) {
	m.outbound.WithLabelValues(result, tls).Inc()
	if result == "delivered" {
		m.outboundTime.Observe(latency.Seconds())
	}
}

// QueueStats is what the queue gauges read at each scrape.
type QueueStats struct {
	Messages, Recipients, Deferred int
	Octets                         int64
	OldestAge                      time.Duration
}

// WatchQueue adds the queue gauges, which call stats at each scrape so
// that the depth shown is the queue's own (the database's, for a queue
// several nodes share), never a count kept by this process.
func (m *Metrics) WatchQueue(stats func() (QueueStats, error)) {
	m.reg.MustRegister(&queueCollector{stats: stats})
}

var (
	queueMessages   = prometheus.NewDesc("mailsec_queue_messages", "Messages in the outbound queue.", nil, nil)
	queueRecipients = prometheus.NewDesc("mailsec_queue_recipients", "Recipients still to be delivered.", nil, nil)
	queueDeferred   = prometheus.NewDesc("mailsec_queue_deferred_messages", "Queued messages that have had at least one failed attempt.", nil, nil)
	queueOctets     = prometheus.NewDesc("mailsec_queue_bytes", "Octets of the queued messages.", nil, nil)
	queueOldest     = prometheus.NewDesc("mailsec_queue_oldest_seconds", "Age of the oldest queued message.", nil, nil)
)

// queueCollector reads the queue at scrape time.
type queueCollector struct {
	stats func() (QueueStats, error)
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{queueMessages, queueRecipients, queueDeferred, queueOctets, queueOldest} {
		ch <- d
	}
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.stats()
	if err != nil {
		ch <- prometheus.NewInvalidMetric(queueMessages, err)
		return
	}
	ch <- prometheus.MustNewConstMetric(queueMessages, prometheus.GaugeValue, float64(st.Messages))
	ch <- prometheus.MustNewConstMetric(queueRecipients, prometheus.GaugeValue, float64(st.Recipients))
	ch <- prometheus.MustNewConstMetric(queueDeferred, prometheus.GaugeValue, float64(st.Deferred))
	ch <- prometheus.MustNewConstMetric(queueOctets, prometheus.GaugeValue, float64(st.Octets))
	ch <- prometheus.MustNewConstMetric(queueOldest, prometheus.GaugeValue, st.OldestAge.Seconds())
}
