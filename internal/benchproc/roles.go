package main

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spacemonkeygo/openssl"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/cfloor"
	"github.com/sslsession/sslsession/internal/loopback"
)

// roleEnv names the role a re-executed benchmark binary plays: the Go
// servers and clients under test run in processes of their own, started
// from this same binary with BENCHPROC_ROLE="ROLE VERSION CERT KEY".
const roleEnv = "BENCHPROC_ROLE"

// runRole runs the role named in the environment, if any, and reports
// whether there was one. Servers print "port N" and serve until standard
// input ends; clients speak the C client's protocol (csrc/benchc.c).
func runRole() (bool, error) {
	spec := os.Getenv(roleEnv)
	if spec == "" {
		return false, nil
	}
	f := strings.Fields(spec)
	if len(f) != 4 {
		return true, fmt.Errorf("%s: want ROLE VERSION CERT KEY, got %q", roleEnv, spec)
	}
	v := versionOf(f[1])
	certPEM, err := os.ReadFile(f[2])
	if err != nil {
		return true, err
	}
	keyPEM, err := os.ReadFile(f[3])
	if err != nil {
		return true, err
	}
	cert := &loopback.Cert{CertPEM: certPEM, KeyPEM: keyPEM}
	switch f[0] {
	case "sslsession-server":
		return true, librarySide(cert, v)
	case "tls-server":
		return true, goTLSServer(cert, v)
	case "floor-server", "floor-blocking-server":
		return true, floorServer(f[2], f[3], versionCode(v), f[0] == "floor-blocking-server")
	case "floor-client", "floor-blocking-client":
		c, err := newFloorClient(f[2], versionCode(v), f[0] == "floor-blocking-client")
		if err != nil {
			return true, err
		}
		return true, clientLoop(c)
	case "sslsession-client":
		c, err := newLibraryClient(cert, v)
		if err != nil {
			return true, err
		}
		return true, clientLoop(c)
	case "tls-client":
		return true, clientLoop(newGoTLSClient(cert, v))
	}
	return true, fmt.Errorf("%s: unknown role %q", roleEnv, f[0])
}

// versionOf is the version named "12" or "13" in the benchmark.
func versionOf(v string) sslsession.Version {
	if v == "13" {
		return sslsession.TLS13
	}
	return sslsession.TLS12
}

// versionCode is v's protocol version number, for the C code.
func versionCode(v sslsession.Version) int {
	if v == sslsession.TLS13 {
		return 0x0304
	}
	return 0x0303
}

// serveUntilStdinEnds accepts connections on ln, each handled by handle in
// its own goroutine, and returns when standard input ends.
func serveUntilStdinEnds(ln net.Listener, handle func(net.Conn)) error {
	fmt.Printf("port %d\n", ln.Addr().(*net.TCPAddr).Port)
	go func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			go handle(raw)
		}
	}()
	_, _ = io.Copy(io.Discard, os.Stdin)
	return ln.Close()
}

// librarySide is this library's server as the examples run it
// (examples/fleet-server): Server on each accepted connection, a deadline,
// the handshake, then echo until the client closes.
func librarySide(cert *loopback.Cert, v sslsession.Version) error {
	ctx, err := loopback.ServerCtx(cert, loopback.Config{Min: v, Max: v})
	if err != nil {
		return err
	}
	if err := cfloor.PinSuites(ctx); err != nil {
		return err
	}
	if err := cfloor.PinGroups(ctx); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	return serveUntilStdinEnds(ln, func(raw net.Conn) {
		c, err := sslsession.Server(raw, ctx)
		if err != nil {
			raw.Close()
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if err := c.Handshake(); err != nil {
			return
		}
		_, _ = io.Copy(c, c)
	})
}

// goTLSServer is crypto/tls's server, the same way.
func goTLSServer(cert *loopback.Cert, v sslsession.Version) error {
	pair, err := tls.X509KeyPair(cert.CertPEM, cert.KeyPEM)
	if err != nil {
		return err
	}
	cfg := goTLSConfig(v, true)
	cfg.Certificates = []tls.Certificate{pair}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	return serveUntilStdinEnds(ln, func(raw net.Conn) {
		c := tls.Server(raw, cfg)
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(30 * time.Second))
		if err := c.Handshake(); err != nil {
			return
		}
		_, _ = io.Copy(c, c)
	})
}

// goTLSConfig pins crypto/tls to v, the benchmark's TLS 1.2 suite and its
// group (a client offers P-256 after it). TLS 1.3 suites are not configurable in crypto/tls; on a machine
// with AES instructions it picks TLS_AES_128_GCM_SHA256, and the C peer
// checks that it did.
func goTLSConfig(v sslsession.Version, server bool) *tls.Config {
	ver := uint16(tls.VersionTLS12)
	if v == sslsession.TLS13 {
		ver = tls.VersionTLS13
	}
	curves := []tls.CurveID{tls.X25519}
	if !hasX25519() {
		curves[0] = tls.CurveP256
	}
	if !server && curves[0] != tls.CurveP256 {
		// A TLS 1.2 server takes an ECDSA certificate only on a curve
		// the client lists; the key share of TLS 1.3 is the first.
		curves = append(curves, tls.CurveP256)
	}
	return &tls.Config{
		MinVersion:       ver,
		MaxVersion:       ver,
		CurvePreferences: curves,
		CipherSuites:     []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
	}
}

// hasX25519: OpenSSL 1.1.0 and later have X25519; the benchmark uses
// P-256 everywhere on 1.0.2.
func hasX25519() bool {
	v := sslsession.RuntimeVersion()
	return v.Major() > 1 || v.Minor() >= 1
}

// client is one implementation of the measured client: seed holds a
// session for the mode (full: none), one makes a connection and says
// whether it resumed.
type client interface {
	seed(addr, mode string) error
	one() (resumed bool, err error)
}

// tallier is a client that tallies each handshake's suite and group as
// the C client does, for the benchmark to check ("suites=.. groups=..").
type tallier interface {
	tallies() string
}

// clientLoop answers the benchmark's commands on standard input as the C
// client does: "seed PORT MODE" and "run COUNT SECONDS".
func clientLoop(c client) error {
	fmt.Println("ready")
	in := bufio.NewScanner(os.Stdin)
	for in.Scan() {
		f := strings.Fields(in.Text())
		switch {
		case len(f) == 3 && f[0] == "seed":
			if err := c.seed(net.JoinHostPort("127.0.0.1", f[1]), f[2]); err != nil {
				fmt.Printf("error seed: %s\n", oneLine(err))
				continue
			}
			fmt.Println("ok")
		case len(f) == 3 && f[0] == "run":
			count, err1 := strconv.Atoi(f[1])
			secs, err2 := strconv.ParseFloat(f[2], 64)
			if err1 != nil || err2 != nil {
				fmt.Println("error bad run command")
				continue
			}
			start := time.Now()
			stop := start.Add(time.Duration(secs * float64(time.Second)))
			n, resumed := 0, 0
			var err error
			for (count <= 0 || n < count) && time.Now().Before(stop) {
				var r bool
				if r, err = c.one(); err != nil {
					break
				}
				n++
				if r {
					resumed++
				}
			}
			tally := ""
			if t, ok := c.(tallier); ok {
				tally = " " + t.tallies() // read even after a failure: the next round starts anew
			}
			if err != nil {
				fmt.Printf("error handshake %d: %s\n", n+1, oneLine(err))
				continue
			}
			fmt.Printf("ok n=%d resumed=%d failed=0 ns=%d%s\n", n, resumed, time.Since(start).Nanoseconds(), tally)
		default:
			fmt.Println("error unknown command")
		}
	}
	return in.Err()
}

// oneLine keeps an error on the one line the protocol allows.
func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}

// libraryClient is Dial with the session held from the seed connection,
// as a program keeping one session per server does.
type libraryClient struct {
	tickets, noTickets, ctx *openssl.Ctx
	addr                    string
	held                    *sslsession.Session
}

func newLibraryClient(cert *loopback.Cert, v sslsession.Version) (*libraryClient, error) {
	c := &libraryClient{}
	for _, p := range []**openssl.Ctx{&c.tickets, &c.noTickets} {
		ctx, err := loopback.ClientCtx(cert, v, v)
		if err != nil {
			return nil, err
		}
		if err := cfloor.PinSuites(ctx); err != nil {
			return nil, err
		}
		if err := cfloor.PinGroups(ctx); err != nil {
			return nil, err
		}
		*p = ctx
	}
	sc, err := sslsession.NewCtx(c.noTickets)
	if err != nil {
		return nil, err
	}
	sc.Options(sslsession.OptionNoTicket, 0)
	return c, nil
}

func (c *libraryClient) seed(addr, mode string) error {
	c.addr, c.ctx = addr, c.tickets
	if mode == "id" {
		c.ctx = c.noTickets
	}
	if c.held != nil {
		c.held.Close()
		c.held = nil
	}
	if mode == "full" {
		return nil
	}
	conn, err := sslsession.Dial("tcp", addr, &sslsession.DialConfig{Ctx: c.ctx, ServerName: "localhost"})
	if err != nil {
		return err
	}
	held, err := conn.AwaitSession(5 * time.Second)
	if err == nil {
		err = finish(conn)
	} else {
		conn.Close()
	}
	if err != nil {
		if held != nil {
			held.Close()
		}
		return err
	}
	c.held = held
	return nil
}

func (c *libraryClient) one() (bool, error) {
	conn, err := sslsession.Dial("tcp", c.addr, &sslsession.DialConfig{Ctx: c.ctx, Session: c.held, ServerName: "localhost"})
	if err != nil {
		return false, err
	}
	resumed := conn.SessionReused()
	return resumed, finish(conn)
}

// halfCloser is a connection that can send close_notify and still read.
type halfCloser interface {
	io.ReadCloser
	CloseWrite() error
}

// finish ends a connection as every implementation of the benchmark
// does: close_notify, read to the server's, close.
func finish(c halfCloser) error {
	err := c.CloseWrite()
	if err == nil {
		_, err = io.Copy(io.Discard, c)
	}
	if cerr := c.Close(); err == nil && !errors.Is(cerr, net.ErrClosed) {
		err = cerr
	}
	return err
}

// goTLSClient is crypto/tls's client with a one-entry session cache.
// crypto/tls resumes TLS 1.2 with tickets only: it has no mode "id".
type goTLSClient struct {
	full *tls.Config
	cfg  *tls.Config
	addr string
}

func newGoTLSClient(cert *loopback.Cert, v sslsession.Version) *goTLSClient {
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(cert.CertPEM)
	full := goTLSConfig(v, false)
	full.RootCAs, full.ServerName = roots, "localhost"
	return &goTLSClient{full: full}
}

func (c *goTLSClient) seed(addr, mode string) error {
	c.addr, c.cfg = addr, c.full
	switch mode {
	case "full":
		return nil
	case "id":
		return errors.New("crypto/tls does not resume by session ID")
	}
	c.cfg = c.full.Clone()
	c.cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
	_, err := c.one()
	return err
}

func (c *goTLSClient) one() (bool, error) {
	conn, err := tls.Dial("tcp", c.addr, c.cfg)
	if err != nil {
		return false, err
	}
	resumed := conn.ConnectionState().DidResume
	return resumed, finish(conn)
}
