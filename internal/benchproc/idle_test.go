package main

import (
	"crypto/tls"
	"io"
	"net"
	"os"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
)

func TestCheckIdleOptions(t *testing.T) {
	ok := options{side: "server", idle: 1000, idleFor: 5 * time.Second}
	require.NoError(t, checkIdleOptions(ok))
	for _, bad := range []options{
		{idle: -1, idleFor: time.Second},
		{idle: 10, idleFor: 0},
		{idle: 10, idleFor: -time.Second},
		{idle: 10, idleFor: maxIdleTime + time.Second},
	} {
		require.Error(t, checkIdleOptions(bad), "%+v", bad)
	}
	// A bad value stops the benchmark before anything starts.
	err := bench(io.Discard, options{side: "server", rounds: 1, per: time.Millisecond, idle: 5, idleFor: time.Minute})
	require.ErrorContains(t, err, "-idle-time")
}

func TestParseVmRSS(t *testing.T) {
	n, err := parseVmRSS("Name:\tx\nVmPeak:\t  9000 kB\nVmRSS:\t    1234 kB\nThreads:\t3\n")
	require.NoError(t, err)
	require.Equal(t, int64(1234*1024), n)
	for _, bad := range []string{"Name:\tx\n", "VmRSS:\t12 MB\n", "VmRSS:\tx kB\n", "VmRSS:\t-5 kB\n", "VmRSS:\n"} {
		_, err := parseVmRSS(bad)
		require.Error(t, err, "%q", bad)
	}
	n, err = vmRSS(os.Getpid())
	require.NoError(t, err)
	require.Greater(t, n, int64(1<<20))
}

// The idle measure tells a process that spins from one that sleeps: this
// test process with a goroutine spinning, then without.
func TestCPUOverSeesSpinning(t *testing.T) {
	var stop atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		for !stop.Load() {
		}
	}()
	cpu, wall, err := cpuOver(os.Getpid(), 300*time.Millisecond)
	stop.Store(true)
	<-done
	require.NoError(t, err)
	require.Greater(t, cpu, wall/5, "a spinning goroutine: %s of CPU in %s", cpu, wall)

	runtime.GC()
	cpu, wall, err = cpuOver(os.Getpid(), 300*time.Millisecond)
	require.NoError(t, err)
	require.Less(t, cpu, wall/10, "nothing running: %s of CPU in %s", cpu, wall)

	_, _, err = cpuOver(1<<30, time.Millisecond)
	require.Error(t, err, "no such process")
}

// The checks on a used idle connection fail when the server does not
// answer as it must.
func TestIdleProbes(t *testing.T) {
	cert, err := loopback.SelfSigned()
	require.NoError(t, err)
	pair, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
	require.NoError(t, err)
	dir := t.TempDir()
	certFile := dir + "/cert.pem"
	require.NoError(t, os.WriteFile(certFile, cert.CertPEM, 0o600))
	cfg, err := idleClientConfig(certFile, "12")
	require.NoError(t, err)

	serve := func(h func(*tls.Conn)) string { return serveGoTLS(t, pair, h) }
	echo := serve(func(c *tls.Conn) { _, _ = io.Copy(c, c) })
	// Reads one record, then drops the TCP connection without close_notify.
	drop := serve(func(c *tls.Conn) {
		_, _ = c.Read(make([]byte, 64))
		_ = c.NetConn().Close()
	})
	// Answers one read with a wrong line, then close_notify.
	wrong := serve(func(c *tls.Conn) {
		_, _ = c.Read(make([]byte, 64))
		_, _ = io.WriteString(c, "HTTP/1.1 500 no\r\n")
	})
	// Says nothing after the handshake, not even to close_notify (it reads
	// the socket, not TLS, until the client goes): a use times out.
	silent := serve(func(c *tls.Conn) { _, _ = io.Copy(io.Discard, c.NetConn()) })

	use := func(addr string, p probe) error {
		conns, err := openIdle(addr, 1, cfg)
		require.NoError(t, err)
		require.Len(t, conns, 1)
		defer conns[0].Close()
		require.NoError(t, conns[0].SetDeadline(time.Now().Add(time.Second)))
		return p(conns[0])
	}
	require.NoError(t, use(echo, probeEcho))
	require.NoError(t, use(echo, probeCloseNotify))
	require.Error(t, use(echo, probeHTTP), "an echo is no HTTP answer")
	require.Error(t, use(drop, probeEcho))
	require.Error(t, use(drop, probeCloseNotify), "closed without close_notify")
	require.Error(t, use(wrong, probeEcho))
	require.ErrorContains(t, use(wrong, probeHTTP), "500")
	require.Error(t, use(wrong, probeCloseNotify), "data before close_notify")
	require.Error(t, use(silent, probeCloseNotify), "no answer")

	// A server that is gone: opening fails with the connection's number.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gone := ln.Addr().String()
	ln.Close()
	conns, err := openIdle(gone, 3, cfg)
	require.Error(t, err)
	require.Empty(t, conns)
}

// serveGoTLS runs a crypto/tls server (the benchmark's TLS 1.2
// configuration, with pair) until the test ends, handling each connection
// that completes its handshake with h, and returns its address.
func serveGoTLS(t testing.TB, pair tls.Certificate, h func(*tls.Conn)) string {
	scfg := goTLSConfig(sslsession.TLS12, true)
	scfg.Certificates = []tls.Certificate{pair}
	return sesstest.ServeTCP(t, func(raw net.Conn) {
		c := tls.Server(raw, scfg)
		defer c.Close()
		if c.Handshake() == nil {
			h(c)
		}
	})
}
