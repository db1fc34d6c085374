package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/cfloor"
	"github.com/sslsession/sslsession/internal/loopback"
)

// The idle part of bench-server: does a server burn CPU while it holds
// many open connections that do nothing? Each server that can hold many
// connections at once (this library's, crypto/tls's, nginx, the Go+C
// floor; not the C server, which serves one connection at a time, nor the
// blocking floor, whose C code times a silent connection out after 5 s)
// is started on its own and given o.idle TLS connections, opened from this
// process with this library's Dial, handshakes done, then nothing sent.
// After a moment to settle, the server's CPU time is read over o.idleFor,
// with its threads, its resident memory and its open sockets. Then a sample of the
// connections is used, to show the server still serves them: an echo and
// a close_notify answered (this library's and crypto/tls's servers echo),
// an HTTP request (nginx), a close_notify answered (the Go+C floor, which
// reads to close_notify as the C server does). The library's client tells
// a close_notify (io.EOF) from a connection closed without one (an error
// wrapping io.ErrUnexpectedEOF); crypto/tls's reads both as io.EOF.

// idleSetup is what the idle part needs from the benchmark.
type idleSetup struct {
	dir, certFile, keyFile, self string
	version                      string // "12" or "13"
	cpu                          int    // the CPU the servers are pinned to; -1: none
	only                         *regexp.Regexp
	nginx                        *nginxInfo
}

// maxIdleTime keeps the idle part within the 30 s deadline the Go servers
// put on each connection (as examples/fleet-server does).
const maxIdleTime = 20 * time.Second

// idleSample is how many of the idle connections are used afterwards.
const idleSample = 10

func checkIdleOptions(o options) error {
	if o.idle < 0 {
		return fmt.Errorf("-idle %d: a number of connections, or 0 for no idle part", o.idle)
	}
	if o.idleFor <= 0 || o.idleFor > maxIdleTime {
		return fmt.Errorf("-idle-time %s: more than 0 and at most %s (the servers' deadline on a connection is 30 s)", o.idleFor, maxIdleTime)
	}
	return nil
}

// idleFigures are one server's figures with the idle connections open.
type idleFigures struct {
	name           string
	cpu            time.Duration // over wall
	wall           time.Duration
	threads        int
	rssBefore, rss int64 // bytes: before the connections, with them
	sockets        int
	probed         int // connections of the sample that answered
}

// idleConn is one of the idle connections.
type idleConn interface {
	io.ReadWriteCloser
	CloseWrite() error
	SetDeadline(time.Time) error
}

// probe is how a connection of the sample shows the server still serves
// it.
type probe func(idleConn) error

func idle(w io.Writer, o options, su idleSetup) error {
	if err := raiseNoFile(o.idle + 256); err != nil {
		return err
	}
	servers := []struct {
		name   string
		launch func() (*proc, int, error)
		probe  probe
	}{
		{"sslsession", func() (*proc, int, error) {
			return startServer("sslsession server", su.cpu, roleSpec("sslsession-server", su.version, su.certFile, su.keyFile), su.self)
		}, probeEcho},
		{"crypto/tls", func() (*proc, int, error) {
			return startServer("crypto/tls server", su.cpu, roleSpec("tls-server", su.version, su.certFile, su.keyFile), su.self)
		}, probeEcho},
		{"nginx", func() (*proc, int, error) {
			// nginx closes idle connections once fewer than a sixteenth
			// of its worker_connections are free: room for that.
			return su.nginx.start(filepath.Join(su.dir, "idle"), su.version, su.certFile, su.keyFile, su.cpu, max(1024, o.idle+o.idle/8+64))
		}, probeHTTP},
		{"Go+C", func() (*proc, int, error) {
			return startServer("Go+C server", su.cpu, roleSpec("floor-server", su.version, su.certFile, su.keyFile), su.self)
		}, probeCloseNotify},
	}
	cfg, err := idleClientConfig(su.certFile, su.version)
	if err != nil {
		return err
	}
	var figs []idleFigures
	for _, s := range servers {
		if !su.only.MatchString(s.name) {
			continue
		}
		p, port, err := s.launch()
		if err != nil {
			return fmt.Errorf("idle, %s: %w", s.name, err)
		}
		f, err := idleOne(p, port, o, cfg, s.probe)
		p.stop()
		if err != nil {
			return fmt.Errorf("idle, %s: %w", s.name, err)
		}
		f.name = s.name
		figs = append(figs, f)
	}
	if len(figs) == 0 {
		return nil
	}
	reportIdle(w, o, su, figs)
	return nil
}

// idleOne opens the connections to the server p listening on port,
// measures it idle, uses the sample and closes them.
func idleOne(p *proc, port int, o options, cfg *sslsession.DialConfig, use probe) (idleFigures, error) {
	var f idleFigures
	var err error
	if f.rssBefore, err = vmRSS(p.pid); err != nil {
		return f, err
	}
	conns, err := openIdle(net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), o.idle, cfg)
	defer func() {
		for _, c := range conns {
			_ = c.SetDeadline(time.Now().Add(time.Second))
			c.Close()
		}
	}()
	if err != nil {
		return f, err
	}
	time.Sleep(min(time.Second, o.idleFor)) // the last handshakes end, the runtime settles
	if f.cpu, f.wall, err = cpuOver(p.pid, o.idleFor); err != nil {
		return f, err
	}
	f.threads = threads(p.pid)
	if f.rss, err = vmRSS(p.pid); err != nil {
		return f, err
	}
	if f.sockets, err = sockets(p.pid); err != nil {
		return f, err
	}
	if f.sockets < o.idle {
		return f, fmt.Errorf("the server holds %d sockets, fewer than the %d connections", f.sockets, o.idle)
	}
	n := min(idleSample, len(conns))
	for i := 0; i < n; i++ {
		k := i * len(conns) / n
		c := conns[k]
		if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
			return f, err
		}
		if err := use(c); err != nil {
			return f, fmt.Errorf("connection %d of %d, after %s idle: %w", k+1, len(conns), o.idleFor, err)
		}
		f.probed++
	}
	return f, nil
}

// cpuOver is the CPU time process pid uses over about d, and the time it
// was measured over.
func cpuOver(pid int, d time.Duration) (cpu, wall time.Duration, err error) {
	c0, err := snapCPU(pid)
	if err != nil {
		return 0, 0, err
	}
	if len(c0.threads) == 0 {
		return 0, 0, fmt.Errorf("process %d: no thread's run time readable", pid)
	}
	t0 := time.Now()
	time.Sleep(d)
	c1, err := snapCPU(pid)
	if err != nil {
		return 0, 0, err
	}
	return cpuSince(c0, c1), time.Since(t0), nil
}

// idleClientConfig is this library's client on the benchmark's version,
// suite and group, trusting the benchmark's certificate, checking the name
// "localhost".
func idleClientConfig(certFile, v string) (*sslsession.DialConfig, error) {
	pem, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	ver := versionOf(v)
	ctx, err := loopback.ClientCtx(&loopback.Cert{CertPEM: pem}, ver, ver)
	if err != nil {
		return nil, err
	}
	if err := cfloor.PinSuites(ctx); err != nil {
		return nil, err
	}
	return &sslsession.DialConfig{Ctx: ctx, ServerName: "localhost", Timeout: 10 * time.Second}, nil
}

// openIdle opens n TLS connections to addr, a few at a time, and returns
// them with their handshakes done; on an error, the ones opened so far.
func openIdle(addr string, n int, cfg *sslsession.DialConfig) ([]idleConn, error) {
	const parallel = 4
	conns := make([]idleConn, n)
	errs := make([]error, parallel)
	var wg sync.WaitGroup
	for g := 0; g < parallel; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := g; i < n; i += parallel {
				c, err := sslsession.Dial("tcp", addr, cfg)
				if err != nil {
					errs[g] = fmt.Errorf("connection %d: %w", i+1, err)
					return
				}
				conns[i] = c
			}
		}()
	}
	wg.Wait()
	var open []idleConn
	for _, c := range conns {
		if c != nil {
			open = append(open, c)
		}
	}
	return open, errors.Join(errs...)
}

// probeEcho sends a line and wants it back, then the close_notify
// exchange.
func probeEcho(c idleConn) error {
	const line = "idle?\n"
	if _, err := io.WriteString(c, line); err != nil {
		return err
	}
	got := make([]byte, len(line))
	if _, err := io.ReadFull(c, got); err != nil {
		return fmt.Errorf("echo: %w", err)
	}
	if string(got) != line {
		return fmt.Errorf("echo: %q back for %q", got, line)
	}
	return probeCloseNotify(c)
}

// probeCloseNotify sends close_notify and wants the server's back (the
// library's Read says io.EOF on it, an error on a connection closed
// without one), nothing before it.
func probeCloseNotify(c idleConn) error {
	if err := c.CloseWrite(); err != nil {
		return err
	}
	got, err := io.ReadAll(io.LimitReader(c, 4096))
	if err != nil {
		return fmt.Errorf("close_notify: %w", err)
	}
	if len(got) != 0 {
		return fmt.Errorf("close_notify: %d bytes before it", len(got))
	}
	return nil
}

// probeHTTP asks nginx for its page (the benchmark's nginx answers 204).
func probeHTTP(c idleConn) error {
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"); err != nil {
		return err
	}
	status, err := bufio.NewReader(io.LimitReader(c, 4096)).ReadString('\n')
	if err != nil {
		return fmt.Errorf("HTTP: %w", err)
	}
	if !strings.HasPrefix(status, "HTTP/1.1 204 ") {
		return fmt.Errorf("HTTP: %q", strings.TrimSpace(status))
	}
	return nil
}

// raiseNoFile raises this process's soft limit of open files to at least
// need, up to the hard limit. The servers started afterwards inherit it
// (Go's own raise at start-up is not passed on to children; an explicit
// one is).
func raiseNoFile(need int) error {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return err
	}
	if l.Max < uint64(need) {
		return fmt.Errorf("the open files' hard limit is %d, the idle part needs %d: lower -idle or raise the limit", l.Max, need)
	}
	l.Cur = l.Max
	return syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l)
}

// vmRSS is the resident memory of process pid, in bytes
// (/proc/PID/status, VmRSS).
func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(string(b))
}

func parseVmRSS(status string) (int64, error) {
	for _, l := range strings.Split(status, "\n") {
		v, ok := strings.CutPrefix(l, "VmRSS:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("/proc status: VmRSS %q", strings.TrimSpace(v))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || kb < 0 {
			return 0, fmt.Errorf("/proc status: VmRSS %q", strings.TrimSpace(v))
		}
		return kb << 10, nil
	}
	return 0, errors.New("/proc status: no VmRSS")
}

// sockets counts the sockets process pid has open.
func sockets(pid int) (int, error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, e := range ents {
		if t, err := os.Readlink(filepath.Join(dir, e.Name())); err == nil && strings.HasPrefix(t, "socket:") {
			n++
		}
	}
	return n, nil
}

func reportIdle(w io.Writer, o options, su idleSetup, figs []idleFigures) {
	v := "TLS 1.2"
	if su.version == "13" {
		v = "TLS 1.3"
	}
	fmt.Fprintf(w, "\nIdle: %d open %s connections to each server (handshakes done by this library's Dial from the benchmark's process, then nothing sent); "+
		"the server's CPU over %s after %s to settle, its threads, resident memory (VmRSS) and open sockets; "+
		"then %d of the connections used (an echo and close_notify, an HTTP request to nginx, close_notify to Go+C)\n\n",
		o.idle, v, o.idleFor, min(time.Second, o.idleFor), min(idleSample, o.idle))
	fmt.Fprintln(w, "| server | CPU ms/s | CPU % | threads | VmRSS MiB, no connection | VmRSS MiB, idle connections | KiB per connection | sockets | used |")
	fmt.Fprintln(w, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, f := range figs {
		share := f.cpu.Seconds() / f.wall.Seconds()
		perConn := float64(f.rss-f.rssBefore) / 1024 / float64(o.idle)
		fmt.Fprintf(w, "| %s | %.3f | %.4f %% | %d | %.1f | %.1f | %.1f | %d | %d of %d |\n",
			f.name, share*1000, share*100, f.threads, float64(f.rssBefore)/(1<<20), float64(f.rss)/(1<<20), perConn,
			f.sockets, f.probed, min(idleSample, o.idle))
	}
}
