package main

import (
	"errors"
	"io"
	"log"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// handshakeLog counts the connections whose handshake did not complete and
// logs them at most once per period, as one summary line. A load
// balancer's health check connects and closes without a word: logging a
// line for each would flood the log.
type handshakeLog struct {
	period time.Duration
	total  *prometheus.CounterVec // by reason: "closed" or "failed"

	mu       sync.Mutex
	last     time.Time // when the last line was written
	closed   int       // closed before the handshake ended, since then
	failed   int       // other failures since then
	lastErr  string    // the latest failure, for the line
	flushing bool
}

func newHandshakeLog(period time.Duration) *handshakeLog {
	return &handshakeLog{
		period: period,
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleet_server_handshakes_incomplete_total",
			Help: `Connections whose TLS handshake did not complete: reason "closed" (the peer closed or reset it before the handshake ended, as plain TCP health checks do) or "failed" (anything else).`,
		}, []string{"reason"}),
	}
}

// closedEarly reports a peer that went away before the handshake ended.
func closedEarly(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// add counts one incomplete handshake; the first after a quiet period is
// logged at once, the rest in a summary at the end of the period.
func (h *handshakeLog) add(remote net.Addr, err error) {
	reason := "failed"
	if closedEarly(err) {
		reason = "closed"
	}
	h.total.WithLabelValues(reason).Inc()
	h.mu.Lock()
	defer h.mu.Unlock()
	if reason == "closed" {
		h.closed++
	} else {
		h.failed++
		h.lastErr = remote.String() + ": " + err.Error()
	}
	if time.Since(h.last) >= h.period {
		h.writeLocked()
		return
	}
	if !h.flushing {
		h.flushing = true
		time.AfterFunc(h.period-time.Since(h.last), func() {
			h.mu.Lock()
			defer h.mu.Unlock()
			h.flushing = false
			h.writeLocked()
		})
	}
}

func (h *handshakeLog) writeLocked() {
	if h.closed == 0 && h.failed == 0 {
		return
	}
	if h.failed == 0 {
		log.Printf("handshakes not completed: %d closed by the peer first (plain TCP probes?)", h.closed)
	} else {
		log.Printf("handshakes not completed: %d closed by the peer first (plain TCP probes?), %d failed (latest %s)",
			h.closed, h.failed, h.lastErr)
	}
	h.closed, h.failed, h.lastErr = 0, 0, ""
	h.last = time.Now()
}
