// Command benchhandshake is make bench-handshake: handshakes per second of
// crypto/tls, of this library (Dial against the loopback server, OpenSSL
// on the socket) and of the C floor (internal/cfloor), for TLS 1.2 and
// 1.3, full and resumed, in one process, with interleaved rounds; then 8
// concurrent clients against one server, and 64 KiB echo throughput. The
// same ECDSA P-256 certificate everywhere; crypto/tls uses X25519, as
// OpenSSL does by default. Figures are medians over the rounds; the ratios
// are what to compare.
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
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/cfloor"
	"github.com/sslsession/sslsession/internal/loopback"
)

var (
	rounds     = flag.Int("rounds", 5, "interleaved rounds")
	per        = flag.Duration("time", 700*time.Millisecond, "time per measurement")
	only       = flag.String("only", "", "run only the implementation named (crypto/tls, sslsession, C floor)")
	run        = flag.String("run", "", "run only the tests whose label matches this regular expression")
	cpuprofile = flag.String("cpuprofile", "", "write a CPU profile to this file")
)

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
	versions := []sslsession.Version{sslsession.TLS12}
	if sslsession.MaxSupportedVersion() >= sslsession.TLS13 {
		versions = append(versions, sslsession.TLS13)
	}
	fmt.Printf("OpenSSL %s, %s, GOMAXPROCS %d, %d rounds of %s per figure (median)\n\n",
		sslsession.RuntimeVersion(), runtime.Version(), runtime.GOMAXPROCS(0), *rounds, *per)

	type row struct {
		label   string
		unit    string
		results map[string][]float64
		run     map[string]func() (float64, error)
	}
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
	names := []string{"crypto/tls", "sslsession", "C floor"}
	for _, v := range versions {
		impls := []*impl{goTLS(cert, v), library(cert, v), floor(cert, v)}
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
	fmt.Println("| test | unit | crypto/tls | sslsession | C floor | sslsession / crypto/tls | sslsession / C floor |")
	fmt.Println("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
	for _, row := range rows {
		m := map[string]float64{}
		cells := []string{row.label, row.unit}
		for _, name := range names {
			if xs := row.results[name]; len(xs) > 0 {
				m[name] = median(xs)
				cells = append(cells, fmt.Sprintf("%.0f", m[name]))
			} else {
				cells = append(cells, "")
			}
		}
		cells = append(cells, ratio(m["sslsession"], m["crypto/tls"]), ratio(m["sslsession"], m["C floor"]))
		fmt.Println("| " + strings.Join(cells, " | ") + " |")
	}
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func ratio(a, b float64) string {
	if a == 0 || b == 0 {
		return ""
	}
	return fmt.Sprintf("%.2f×", a/b)
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
	scfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: ver, MaxVersion: ver, CurvePreferences: curves}
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
	full := &tls.Config{RootCAs: roots, ServerName: "localhost", MinVersion: ver, MaxVersion: ver, CurvePreferences: curves}
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

// floor is the C loop; it runs on a locked thread in batches.
func floor(cert *loopback.Cert, v sslsession.Version) *impl {
	code := 0x0303
	if v == sslsession.TLS13 {
		code = 0x0304
	}
	f, err := cfloor.New(cert.CertPEM, cert.KeyPEM, code)
	if err != nil {
		log.Fatal(err)
	}
	return &impl{
		name: "C floor",
		handshakes: func(resumed bool, stop time.Time) (int, error) {
			n := 0
			for time.Now().Before(stop) {
				got, err := f.Run(20, resumed)
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
