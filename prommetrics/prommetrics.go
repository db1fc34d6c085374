// Package prommetrics exports a TLS server's session counters in the
// Prometheus exposition format (github.com/prometheus/client_golang):
// OpenSSL's session cache, the session-store bridge, the Redis store, the
// ticket keys, TLS 1.3 early data and the fleet's ticket ring. The same counters are in expvar
// (sslsession.PublishExpvar). Labels are fixed words and key ages; no key,
// key name or session ID is ever a label or a value.
package prommetrics

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/redisstore"
	"github.com/sslsession/sslsession/ticketring"
)

// Sources are what a Collector reads; nil ones are left out.
type Sources struct {
	Ctx   *sslsession.Ctx   // cache, store-bridge and ticket-key counters
	Store *redisstore.Store // the Redis session store's calls
	Ring  *ticketring.Ring  // the fleet's ticket ring
}

// Collector is a prometheus.Collector over Sources. Register it with a
// prometheus.Registry; every scrape reads the counters afresh.
type Collector struct {
	src   Sources
	descs map[string]*prometheus.Desc
}

type metric struct {
	name, help string
	gauge      bool
	labels     []string
}

var metrics = []metric{
	{name: "cache_sessions", help: "Sessions in OpenSSL's internal cache (SSL_CTX_sess_number).", gauge: true},
	{name: "cache_accept_total", help: "Server handshakes started."},
	{name: "cache_accept_good_total", help: "Server handshakes completed."},
	{name: "cache_hits_total", help: "Sessions resumed by session ID or stateful ticket."},
	{name: "cache_cb_hits_total", help: "Sessions found through the session store."},
	{name: "cache_misses_total", help: "Sessions proposed by clients and not found."},
	{name: "cache_timeouts_total", help: "Sessions proposed by clients and expired."},
	{name: "cache_full_total", help: "Sessions dropped because the internal cache was full."},
	{name: "store_calls_total", help: "Session-store bridge operations, by result.", labels: []string{"op"}},
	{name: "redisstore_calls_total", help: "Redis session-store calls, by result.", labels: []string{"op"}},
	{name: "tickets_issued_total", help: "Session tickets encrypted."},
	{name: "tickets_decrypted_total", help: "Session tickets decrypted, by key age: rotations since the key encrypted (\"next\": a key not yet encrypting here).", labels: []string{"key_age"}},
	{name: "tickets_renewed_total", help: "Tickets under an older key, reissued under the encrypting one."},
	{name: "tickets_unknown_key_total", help: "Tickets under a key name not in the ring: full handshake."},
	{name: "tickets_expired_key_total", help: "Tickets under a key past its decrypt lifetime: full handshake."},
	{name: "tickets_errors_total", help: "Ticket callbacks where OpenSSL failed to set up the cipher or MAC."},
	{name: "early_data_total", help: "TLS 1.3 early data, by event: offered, accepted, rejected; refused (policy), replays_refused (replay cache had the ClientHello), store_failures (replay cache down: refused), panics.", labels: []string{"event"}},
	{name: "ticket_ring_events_total", help: "Ticket-ring events: refreshes, refresh_errors, rotations, conflicts, local_fallbacks, rejoins, foreign, tampered, recreated, rollbacks, future_keys, skewed, splits, hook_panics, publish_errors.", labels: []string{"event"}},
	{name: "ticket_ring_local", help: "1 while tickets are issued under host-local keys.", gauge: true},
	{name: "ticket_ring_split", help: "1 while this server encrypts new tickets under another key than the fleet's ring (its tickets resume on it alone).", gauge: true},
	{name: "ticket_ring_clock_offset_seconds", help: "Redis's clock minus this server's, as the ring last measured it.", gauge: true},
	{name: "ticket_ring_keys", help: "Ticket keys published to the server's contexts.", gauge: true},
}

// New makes a Collector; metric names start with namespace and "_"
// (e.g. "sslsession").
func New(namespace string, src Sources) *Collector {
	c := &Collector{src: src, descs: map[string]*prometheus.Desc{}}
	for _, m := range metrics {
		c.descs[m.name] = prometheus.NewDesc(prometheus.BuildFQName(namespace, "", m.name), m.help, m.labels, nil)
	}
	return c
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect reads the sources.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(name string, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(name string, v int64) {
		ch <- prometheus.MustNewConstMetric(c.descs[name], prometheus.GaugeValue, float64(v))
	}
	if sc := c.src.Ctx; sc != nil {
		m := sc.Metrics()
		gauge("cache_sessions", m.Cache.Number)
		counter("cache_accept_total", m.Cache.Accept)
		counter("cache_accept_good_total", m.Cache.AcceptGood)
		counter("cache_hits_total", m.Cache.Hits)
		counter("cache_cb_hits_total", m.Cache.CbHits)
		counter("cache_misses_total", m.Cache.Misses)
		counter("cache_timeouts_total", m.Cache.Timeouts)
		counter("cache_full_total", m.Cache.CacheFull)
		if m.HasStore {
			s := m.Store
			for op, v := range map[string]int64{"put": s.Puts, "get": s.Gets, "hit": s.Hits, "miss": s.Misses,
				"delete": s.Deletes, "error": s.Errors, "invalid": s.Invalid, "newer_format": s.NewerFormat, "dropped": s.Dropped} {
				counter("store_calls_total", v, op)
			}
		}
		if e := m.EarlyData; e != (sslsession.EarlyDataStats{}) {
			for ev, v := range map[string]int64{"offered": e.Offered, "accepted": e.Accepted, "rejected": e.Rejected,
				"refused": e.Refused, "replays_refused": e.ReplaysRefused, "store_failures": e.StoreFailures, "panics": e.Panics} {
				counter("early_data_total", v, ev)
			}
		}
		if sc.HasTicketKeys() {
			t := m.Tickets
			counter("tickets_issued_total", t.Issued)
			counter("tickets_decrypted_total", t.DecryptedNext, "next")
			for i, v := range t.DecryptedAge {
				age := strconv.Itoa(i)
				if i == len(t.DecryptedAge)-1 {
					age += "+"
				}
				counter("tickets_decrypted_total", v, age)
			}
			counter("tickets_renewed_total", t.Renewed)
			counter("tickets_unknown_key_total", t.UnknownKey)
			counter("tickets_expired_key_total", t.Expired)
			counter("tickets_errors_total", t.Errors+t.NoKey)
		}
	}
	if s := c.src.Store; s != nil {
		st := s.Stats()
		for op, v := range map[string]int64{"put": st.Puts, "get": st.Gets, "hit": st.Hits, "miss": st.Misses,
			"delete": st.Deletes, "error": st.Errors, "invalid": st.Invalid, "unknown_key": st.UnknownKey,
			"oversize": st.Oversize, "wrong_type": st.WrongType, "unsealed": st.Unsealed} {
			counter("redisstore_calls_total", v, op)
		}
	}
	if r := c.src.Ring; r != nil {
		st := r.Stats()
		for ev, v := range map[string]int64{"refreshes": st.Refreshes, "refresh_errors": st.RefreshErrors,
			"rotations": st.Rotations, "conflicts": st.Conflicts, "local_fallbacks": st.Fallbacks,
			"rejoins": st.Rejoins, "foreign": st.Foreign, "tampered": st.Tampered, "recreated": st.Recreated,
			"rollbacks": st.Rollbacks, "future_keys": st.FutureKeys, "skewed": st.Skewed, "splits": st.Splits,
			"hook_panics": st.HookPanics, "publish_errors": st.PublishErrors} {
			counter("ticket_ring_events_total", v, ev)
		}
		local := int64(0)
		if st.Local {
			local = 1
		}
		gauge("ticket_ring_local", local)
		split := int64(0)
		if st.Split {
			split = 1
		}
		gauge("ticket_ring_split", split)
		ch <- prometheus.MustNewConstMetric(c.descs["ticket_ring_clock_offset_seconds"], prometheus.GaugeValue, st.ClockOffset.Seconds())
		gauge("ticket_ring_keys", int64(st.Keys))
	}
}
