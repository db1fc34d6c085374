// Command benchhandshake is make bench-handshake: handshakes per second of
// crypto/tls, of this library (Dial against the loopback server, OpenSSL
// on the socket) and of the C floor (internal/cfloor) on one thread and on
// two, for TLS 1.2 and 1.3, full and resumed, in one process, with
// interleaved rounds; then 8 concurrent clients against one server, 64 KiB
// echo throughput, TCP connections alone in Go and in C, and the ceilings
// those give a TLS library on Go's net. The same ECDSA P-256 certificate
// everywhere; crypto/tls uses X25519, as OpenSSL does by default; every
// implementation uses AES-128-GCM with SHA-256 (cfloor.TLS12Cipher,
// cfloor.TLS13Suite). Figures are medians over the rounds; the ratios are
// what to compare.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"regexp"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strings"
	"sync"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/cfloor"
	"github.com/sslsession/sslsession/internal/loopback"
)

var (
	rounds     = flag.Int("rounds", 5, "interleaved rounds")
	per        = flag.Duration("time", 700*time.Millisecond, "time per measurement")
	only       = flag.String("only", "", "run only the implementation named (crypto/tls, sslsession, C floor, C, 2 threads)")
	run        = flag.String("run", "", "run only the tests whose label matches this regular expression")
	cpuprofile = flag.String("cpuprofile", "", "write a CPU profile to this file")
	tracefile  = flag.String("trace", "", "write an execution trace to this file")
)

// row is one line of the table: a test and its figures per implementation.
type row struct {
	label   string
	unit    string
	results map[string][]float64
	run     map[string]func() (float64, error)
}

// impl is one implementation's handshake and echo loops for one version.
type impl struct {
	name string
	// handshakes runs handshakes until stop and counts them.
	handshakes func(resumed bool, stop time.Time) (int, error)
	// echo moves 64 KiB back and forth until stop; returns bytes one way.
	echo func(stop time.Time) (int64, error)
}

func main() {
	flag.Parse()
	log.SetFlags(0)
	cert, err := loopback.SelfSigned()
	if err != nil {
		log.Fatal(err)
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			log.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			log.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	if *tracefile != "" {
		f, err := os.Create(*tracefile)
		if err != nil {
			log.Fatal(err)
		}
		if err := trace.Start(f); err != nil {
			log.Fatal(err)
		}
		defer trace.Stop()
	}
	versions := []sslsession.Version{sslsession.TLS12}
	if sslsession.MaxSupportedVersion() >= sslsession.TLS13 {
		versions = append(versions, sslsession.TLS13)
	}
	fmt.Printf("OpenSSL %s, %s, GOMAXPROCS %d, %d rounds of %s per figure (median); %s and %s everywhere\n\n",
		sslsession.RuntimeVersion(), runtime.Version(), runtime.GOMAXPROCS(0), *rounds, *per, cfloor.TLS12Cipher, cfloor.TLS13Suite)

	var rows []*row
	add := func(label, unit, name string, f func() (float64, error)) {
		for _, r := range rows {
			if r.label == label {
				r.run[name] = f
				return
			}
		}
		rows = append(rows, &row{label: label, unit: unit, results: map[string][]float64{}, run: map[string]func() (float64, error){name: f}})
	}
	names := []string{"crypto/tls", "sslsession", "C floor", "C, 2 threads"}
	for _, v := range versions {
		impls := []*impl{goTLS(cert, v), library(cert, v), floor(cert, v, false), floor(cert, v, true)}
		for _, im := range impls {
			for _, resumed := range []bool{false, true} {
				kind := "full"
				if resumed {
					kind = "resumed"
				}
				im, resumed := im, resumed
				add(fmt.Sprintf("%s %s", v, kind), "handshakes/s", im.name, func() (float64, error) {
					start := time.Now()
					n, err := im.handshakes(resumed, start.Add(*per))
					return float64(n) / time.Since(start).Seconds(), err
				})
			}
		}
		for _, im := range impls {
			if im.echo == nil {
				continue
			}
			for _, resumed := range []bool{false, true} {
				kind := "full"
				if resumed {
					kind = "resumed"
				}
				im, resumed := im, resumed
				add(fmt.Sprintf("%s %s, 8 concurrent clients", v, kind), "handshakes/s", im.name, func() (float64, error) {
					return concurrent(8, func(stop time.Time) (int, error) { return im.handshakes(resumed, stop) })
				})
			}
			im := im
			add(fmt.Sprintf("%s echo 64 KiB", v), "MB/s each way", im.name, func() (float64, error) {
				start := time.Now()
				n, err := im.echo(start.Add(*per))
				return float64(n) / 1e6 / time.Since(start).Seconds(), err
			})
		}
	}
	// Connections alone: what each handshake row pays before TLS. Go's net
	// (which crypto/tls and this library both use) goes in the crypto/tls
	// column, C's in the C floor's.
	const tcpLabel = "TCP alone, no TLS (Go's net; C)"
	var fl *cfloor.Floor
	if fl, err = cfloor.New(cert.CertPEM, cert.KeyPEM, 0x0303); err != nil {
		log.Fatal(err)
	}
	add(tcpLabel, "connections/s", "crypto/tls", func() (float64, error) { return goTCP(*per) })
	add(tcpLabel, "connections/s", "C floor", func() (float64, error) {
		start := time.Now()
		n := 0
		for time.Since(start) < *per {
			if err := fl.TCP(50); err != nil {
				return 0, err
			}
			n += 50
		}
		return float64(n) / time.Since(start).Seconds(), nil
	})
	if *run != "" {
		re, err := regexp.Compile(*run)
		if err != nil {
			log.Fatal(err)
		}
		kept := rows[:0]
		for _, row := range rows {
			if re.MatchString(row.label) {
				kept = append(kept, row)
			}
		}
		rows = kept
	}
	for r := 0; r < *rounds; r++ {
		for _, row := range rows {
			for _, name := range names {
				f := row.run[name]
				if f == nil || (*only != "" && *only != name) {
					continue
				}
				v, err := f()
				if err != nil {
					log.Fatalf("%s, %s: %v", row.label, name, err)
				}
				row.results[name] = append(row.results[name], v)
			}
		}
	}
	fmt.Println("| test | unit | crypto/tls | sslsession | C floor | C, 2 threads | sslsession / crypto/tls | sslsession / C floor | sslsession / C, 2 threads |")
	fmt.Println("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, row := range rows {
		m := map[string]float64{}
		cells := []string{row.label, row.unit}
		for _, name := range names {
			if xs := row.results[name]; len(xs) > 0 {
				m[name] = cfloor.Median(xs)
				cells = append(cells, fmt.Sprintf("%.0f", m[name]))
			} else {
				cells = append(cells, "")
			}
		}
		cells = append(cells, cfloor.Ratio(m["sslsession"], m["crypto/tls"]), cfloor.Ratio(m["sslsession"], m["C floor"]), cfloor.Ratio(m["sslsession"], m["C, 2 threads"]))
		fmt.Println("| " + strings.Join(cells, " | ") + " |")
	}
	ceilings(rows, tcpLabel)
}

// ceilings prints, for each single-client handshake row, the most a TLS
// library on Go's net could reach: a C floor with the cost of its C
// connection replaced by the cost of a Go one, 1 / (1/floor - 1/C + 1/Go),
// from the one-thread floor and from the two-thread one.
func ceilings(rows []*row, tcpLabel string) {
	var goTCP, cTCP float64
	for _, r := range rows {
		if r.label == tcpLabel && len(r.results["crypto/tls"]) > 0 && len(r.results["C floor"]) > 0 {
			goTCP, cTCP = cfloor.Median(r.results["crypto/tls"]), cfloor.Median(r.results["C floor"])
		}
	}
	if goTCP == 0 {
		return
	}
	ceiling := func(r *row, name string) float64 {
		xs := r.results[name]
		if len(xs) == 0 {
			return 0
		}
		per := 1/cfloor.Median(xs) - 1/cTCP + 1/goTCP
		if per <= 0 {
			return 0
		}
		return 1 / per
	}
	fmt.Printf("\nCeilings on Go's net: each C floor with its connection cost (%.1f µs in C) replaced by Go's (%.1f µs)\n\n", 1e6/cTCP, 1e6/goTCP)
	fmt.Println("| test | ceiling from C floor | ÷ crypto/tls | ceiling from C, 2 threads | ÷ crypto/tls | sslsession / ceiling, 2 threads |")
	fmt.Println("| --- | ---: | ---: | ---: | ---: | ---: |")
	for _, r := range rows {
		c1, c2 := ceiling(r, "C floor"), ceiling(r, "C, 2 threads")
		if r.label == tcpLabel || (c1 == 0 && c2 == 0) {
			continue
		}
		var g, l float64
		if ys := r.results["crypto/tls"]; len(ys) > 0 {
			g = cfloor.Median(ys)
		}
		if ys := r.results["sslsession"]; len(ys) > 0 {
			l = cfloor.Median(ys)
		}
		fmt.Printf("| %s | %.0f | %s | %.0f | %s | %s |\n", r.label, c1, cfloor.Ratio(c1, g), c2, cfloor.Ratio(c2, g), cfloor.Ratio(l, c2))
	}
}

// goTCP is connections alone over Go's net for d: connect, accept, one
// byte from client to server, close both (as Dial and the servers do,
// keep-alive settings included).
func goTCP(d time.Duration) (float64, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	go serveEcho(ln, func(c net.Conn) {
		_, _ = io.Copy(io.Discard, c)
		c.Close()
	})
	start := time.Now()
	n := 0
	for ; time.Since(start) < d; n++ {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return 0, err
		}
		if _, err := c.Write([]byte{'x'}); err != nil {
			c.Close()
			return 0, err
		}
		c.Close()
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

func concurrent(n int, f func(stop time.Time) (int, error)) (float64, error) {
	start := time.Now()
	stop := start.Add(*per)
	var mu sync.Mutex
	total, firstErr := 0, error(nil)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			k, err := f(stop)
			mu.Lock()
			total += k
			if firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	return float64(total) / time.Since(start).Seconds(), firstErr
}

// echoLoop writes 64 KiB and reads it back until stop.
func echoLoop(c net.Conn, stop time.Time) (int64, error) {
	buf := make([]byte, 64<<10)
	got := make([]byte, len(buf))
	var n int64
	for time.Now().Before(stop) {
		if _, err := c.Write(buf); err != nil {
			return n, err
		}
		if _, err := io.ReadFull(c, got); err != nil {
			return n, err
		}
		n += int64(len(buf))
	}
	return n, nil
}

func serveEcho(ln net.Listener, handle func(net.Conn)) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go handle(c)
	}
}

// goTLS is crypto/tls at both ends.
func goTLS(cert *loopback.Cert, v sslsession.Version) *impl {
	pair, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
	if err != nil {
		log.Fatal(err)
	}
	ver := uint16(tls.VersionTLS12)
	if v == sslsession.TLS13 {
		ver = tls.VersionTLS13
	}
	curves := []tls.CurveID{tls.X25519}
	// TLS 1.3 suites are not configurable in crypto/tls; on a machine
	// with AES instructions it picks TLS_AES_128_GCM_SHA256.
	suites := []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}
	scfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: ver, MaxVersion: ver, CurvePreferences: curves, CipherSuites: suites}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", scfg)
	if err != nil {
		log.Fatal(err)
	}
	go serveEcho(ln, func(c net.Conn) {
		defer c.Close()
		_, _ = io.Copy(c, c)
	})
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(cert.CertPEM)
	full := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: ver, MaxVersion: ver, CurvePreferences: curves, CipherSuites: suites}
	resume := full.Clone()
	resume.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	// Seed the cache; with TLS 1.3 the ticket comes with the first read.
	c, err := tls.Dial("tcp", ln.Addr().String(), resume)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := echoLoop(c, time.Now()); err != nil {
		log.Fatal(err)
	}
	_, _ = c.Write([]byte("x"))
	_, _ = io.ReadFull(c, make([]byte, 1))
	if got := c.ConnectionState().CipherSuite; got != suiteID(v) {
		log.Fatalf("crypto/tls negotiated %s", tls.CipherSuiteName(got))
	}
	c.Close()
	return &impl{
		name: "crypto/tls",
		handshakes: func(resumed bool, stop time.Time) (int, error) {
			cfg := full
			if resumed {
				cfg = resume
			}
			n := 0
			for ; time.Now().Before(stop); n++ {
				c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
				if err != nil {
					return n, err
				}
				if c.ConnectionState().DidResume != resumed {
					c.Close()
					return n, fmt.Errorf("resumed: %v", !resumed)
				}
				c.Close()
			}
			return n, nil
		},
		echo: func(stop time.Time) (int64, error) {
			c, err := tls.Dial("tcp", ln.Addr().String(), full)
			if err != nil {
				return 0, err
			}
			defer c.Close()
			return echoLoop(c, stop)
		},
	}
}

// library is Dial against the loopback echo server (Server).
func library(cert *loopback.Cert, v sslsession.Version) *impl {
	sctx, err := loopback.ServerCtx(cert, loopback.Config{Min: v, Max: v})
	if err != nil {
		log.Fatal(err)
	}
	srv, err := loopback.Serve(sctx, cert)
	if err != nil {
		log.Fatal(err)
	}
	cctx, err := loopback.ClientCtx(cert, v, v)
	if err != nil {
		log.Fatal(err)
	}
	for _, ctx := range []*openssl.Ctx{sctx, cctx} {
		if err := cfloor.PinSuites(ctx); err != nil {
			log.Fatal(err)
		}
		if err := cfloor.PinGroups(ctx); err != nil {
			log.Fatal(err)
		}
	}
	dial := func(s *sslsession.Session) (*sslsession.Conn, error) {
		return sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Ctx: cctx, Session: s, ServerName: "localhost"})
	}
	first, err := dial(nil)
	if err != nil {
		log.Fatal(err)
	}
	held, err := first.AwaitSession(5 * time.Second)
	if err != nil {
		log.Fatal(err)
	}
	info, err := held.Info()
	if err != nil {
		log.Fatal(err)
	}
	if uint16(info.CipherID) != suiteID(v) {
		log.Fatalf("sslsession negotiated %s", info.Cipher)
	}
	first.Close()
	return &impl{
		name: "sslsession",
		handshakes: func(resumed bool, stop time.Time) (int, error) {
			var s *sslsession.Session
			if resumed {
				s = held
			}
			n := 0
			for ; time.Now().Before(stop); n++ {
				c, err := dial(s)
				if err != nil {
					return n, err
				}
				if c.SessionReused() != resumed {
					c.Close()
					return n, fmt.Errorf("resumed: %v", !resumed)
				}
				c.Close()
			}
			return n, nil
		},
		echo: func(stop time.Time) (int64, error) {
			c, err := dial(nil)
			if err != nil {
				return 0, err
			}
			defer c.Close()
			return echoLoop(c, stop)
		},
	}
}

// suiteID is the IANA number of the benchmark's suite for v.
func suiteID(v sslsession.Version) uint16 {
	if v == sslsession.TLS13 {
		return tls.TLS_AES_128_GCM_SHA256
	}
	return tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
}

// floor is the C loop, in batches: on one thread, or with the server on a
// second thread.
func floor(cert *loopback.Cert, v sslsession.Version, twoThreads bool) *impl {
	code := 0x0303
	if v == sslsession.TLS13 {
		code = 0x0304
	}
	f, err := cfloor.New(cert.CertPEM, cert.KeyPEM, code)
	if err != nil {
		log.Fatal(err)
	}
	name, run := "C floor", f.Run
	if twoThreads {
		name, run = "C, 2 threads", f.Run2
	}
	return &impl{
		name: name,
		handshakes: func(resumed bool, stop time.Time) (int, error) {
			n := 0
			for time.Now().Before(stop) {
				got, err := run(20, resumed)
				if err != nil {
					return n, err
				}
				if resumed && got != 20 {
					return n, errors.New("the C floor did not resume")
				}
				n += 20
			}
			return n, nil
		},
	}
}
