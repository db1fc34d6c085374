package main

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/sslsession/sslsession"
)

// check --early-data: does the server accept TLS 1.3 early data, how much,
// and does it accept the same early data twice? The client's first flight
// (its ClientHello and early data) is recorded by a relay on 127.0.0.1 in
// this process and sent again, byte for byte, on new connections: to the
// same host, and to every other host given (a fleet). docs/early-data.md
// says how the answer is read.

// earlyReport is check --early-data's result; its JSON form is in
// docs/cli.md.
type earlyReport struct {
	Target       string `json:"target"`
	OpenSSL      string `json:"openssl"`
	ServerName   string `json:"server_name"`
	Verified     bool   `json:"verified"`
	MaxEarlyData uint32 `json:"max_early_data"`
	// Status is SSL_get_early_data_status of the connection that sent
	// early data: accepted, rejected, or not sent (the ticket allows none).
	Status   string         `json:"early_data_status"`
	Accepted bool           `json:"early_data_accepted"`
	Replays  []replayResult `json:"replays"`
	// ReplayAccepted: some host accepted a replay (what
	// --require-no-replay tests).
	ReplayAccepted bool `json:"replay_accepted"`
}

// replayResult is what one host answered to the replayed first flight.
type replayResult struct {
	Host     string `json:"host"`
	Accepted bool   `json:"accepted"`
	Result   string `json:"result"`
}

var errReplayAccepted = &cliError{code: exitNoResume, msg: "a replay of the same early data was accepted (--require-no-replay)"}

// earlyFlight is how long the relay waits, after the server's first byte,
// for the rest of the server's first flight before passing it on; the
// client cannot send anything else before.
const earlyFlight = 150 * time.Millisecond

func runEarly(out io.Writer, f *checkFlags, args []string) error {
	if len(args) == 0 {
		return usageError("--early-data needs host:port: the embedded server does not accept early data")
	}
	if f.conn.starttls != "" {
		return usageError("--early-data does not apply to --starttls")
	}
	if f.conn.tls12 {
		return usageError("--early-data is TLS 1.3: it does not go with --tls1.2")
	}
	if !sslsession.EarlyDataSupported() {
		return failf("early data needs OpenSSL 1.1.1 or later (linked: %s)", sslsession.RuntimeVersion())
	}
	var cls []*client
	for _, a := range args {
		cl, err := newClient(&f.conn, a, nil)
		if err != nil {
			return err
		}
		cl.min, cl.max = sslsession.TLS13, sslsession.TLS13
		cls = append(cls, cl)
	}
	cl := cls[0]
	rep := &earlyReport{Target: cl.addr, OpenSSL: sslsession.RuntimeVersion().String(), ServerName: cl.serverName,
		Verified: cl.verify, Replays: []replayResult{}}
	ctx, err := cl.newCtx(false)
	if err != nil {
		return err
	}
	cfg := &sslsession.DialConfig{Ctx: ctx, ServerName: cl.serverName, InsecureSkipVerify: !cl.verify, Timeout: cl.timeout}
	c, err := sslsession.Dial("tcp", cl.addr, cfg)
	if err != nil {
		return dialError(cl.addr, err)
	}
	sess, err := c.AwaitSession(f.ticketWait)
	_ = c.Close()
	if err != nil {
		return failf("no session ticket from %s within %s: %s", cl.addr, f.ticketWait, stripPrefixes(err.Error()))
	}
	defer sess.Close()
	info, err := sess.Info()
	if err != nil {
		return err
	}
	rep.MaxEarlyData = info.MaxEarlyData
	rep.Status = sslsession.EarlyDataNotSent.String()
	req := strings.NewReplacer(`\r`, "\r", `\n`, "\n").Replace(f.earlyRequest)
	if req == "" {
		req = "HEAD / HTTP/1.1\r\nHost: " + cl.serverName + "\r\n\r\n"
	}
	if info.MaxEarlyData > 0 {
		if err := earlyProbe(rep, cls, cfg, sess, []byte(req)); err != nil {
			return err
		}
	}
	if f.json {
		if err := writeJSON(out, rep); err != nil {
			return err
		}
	} else {
		writeEarly(out, rep)
	}
	if f.requireNoReplay && rep.ReplayAccepted {
		return errReplayAccepted
	}
	return nil
}

// earlyProbe sends req as early data to the first host through the relay,
// then replays the recorded first flight to every host.
func earlyProbe(rep *earlyReport, cls []*client, cfg *sslsession.DialConfig, sess *sslsession.Session, req []byte) error {
	cl := cls[0]
	r, err := newFlightRelay(cl.addr, cl.timeout)
	if err != nil {
		return err
	}
	defer r.close()
	ec := *cfg
	ec.Session, ec.EarlyData, ec.KeepRejectedEarlyData = sess, req, true
	c, err := sslsession.Dial("tcp", r.addr(), &ec)
	if err != nil {
		return dialError(cl.addr, err)
	}
	st := c.EarlyDataStatus()
	_ = c.Close()
	rep.Status = st.String()
	rep.Accepted = st == sslsession.EarlyDataAccepted
	if !rep.Accepted {
		return nil
	}
	clientFlight, serverFlight, err := r.flights()
	if err != nil {
		return failf("recording the first flight to %s: %s", cl.addr, err)
	}
	ref, ok := parseServerFlight(serverFlight)
	if !ok || !ref.psk {
		return failf("the server's answer to the early data from %s could not be read", cl.addr)
	}
	for _, h := range cls {
		res := replayResult{Host: h.addr}
		got, err := replayTo(h.addr, clientFlight, h.timeout)
		switch {
		case err != nil:
			res.Result = "no answer: " + stripPrefixes(err.Error())
		default:
			res.Accepted, res.Result = judgeReplay(ref, got)
		}
		rep.ReplayAccepted = rep.ReplayAccepted || res.Accepted
		rep.Replays = append(rep.Replays, res)
	}
	return nil
}

// judgeReplay reads a server's answer to a replayed first flight against
// its answer to the original one, whose early data it accepted. A
// ServerHello without pre_shared_key refuses the ticket, and so the early
// data. With it, the encrypted part of the flight (EncryptedExtensions and
// Finished, and any answer sent before the client's Finished) is at least
// as long as the original's when the server accepted the early data again:
// rejecting it drops the early_data extension from EncryptedExtensions.
func judgeReplay(ref, got serverFlight) (bool, string) {
	switch {
	case !got.hello:
		return false, "refused: no ServerHello (handshake failed)"
	case got.hrr:
		return false, "refused: HelloRetryRequest"
	case !got.psk:
		return false, "refused: ticket not resumed (full handshake)"
	case got.encrypted >= ref.encrypted:
		return true, fmt.Sprintf("REPLAY ACCEPTED: ticket resumed and early data taken (encrypted flight %d bytes, as the original's %d)", got.encrypted, ref.encrypted)
	}
	return false, fmt.Sprintf("refused: ticket resumed, early data rejected (encrypted flight %d bytes, the original's %d)", got.encrypted, ref.encrypted)
}

// serverFlight is what the records of a server's first flight say.
type serverFlight struct {
	hello     bool // a ServerHello came
	hrr       bool // it was a HelloRetryRequest
	psk       bool // it selected a pre-shared key (the ticket)
	encrypted int  // bytes of application_data records after it
}

// hrrRandom is the ServerHello.random of a HelloRetryRequest (RFC 8446
// §4.1.3).
var hrrRandom = []byte{0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
	0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C}

// parseServerFlight reads the TLS records of b; ok is false when b holds
// no ServerHello that parses. Hostile input is bounded by b.
func parseServerFlight(b []byte) (serverFlight, bool) {
	var f serverFlight
	for len(b) >= 5 {
		typ, n := b[0], int(binary.BigEndian.Uint16(b[3:5]))
		if len(b) < 5+n {
			break
		}
		body := b[5 : 5+n]
		b = b[5+n:]
		switch {
		case typ == 22 && !f.hello:
			if !parseServerHello(body, &f) {
				return f, false
			}
		case typ == 23 && f.hello:
			f.encrypted += n
		}
	}
	return f, f.hello
}

// parseServerHello reads a ServerHello at the start of a handshake record.
func parseServerHello(b []byte, f *serverFlight) bool {
	if len(b) < 4 || b[0] != 2 {
		return false
	}
	n := int(b[1])<<16 | int(b[2])<<8 | int(b[3])
	if len(b) < 4+n {
		return false
	}
	b = b[4 : 4+n]
	if len(b) < 2+32+1 {
		return false
	}
	f.hello = true
	f.hrr = bytes.Equal(b[2:34], hrrRandom)
	b = b[34:]
	sid := int(b[0])
	if len(b) < 1+sid+2+1+2 {
		return false
	}
	b = b[1+sid+3:]
	ext := int(binary.BigEndian.Uint16(b))
	b = b[2:]
	if len(b) < ext {
		return false
	}
	b = b[:ext]
	for len(b) >= 4 {
		typ, n := binary.BigEndian.Uint16(b), int(binary.BigEndian.Uint16(b[2:]))
		if len(b) < 4+n {
			return false
		}
		if typ == 41 { // pre_shared_key
			f.psk = true
		}
		b = b[4+n:]
	}
	return true
}

// replayTo sends flight on a new connection to addr and returns what the
// server answers until it has been quiet for earlyFlight after its first
// byte (or timeout).
func replayTo(addr string, flight []byte, timeout time.Duration) (serverFlight, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return serverFlight{}, err
	}
	defer c.Close()
	limit := time.Now().Add(timeout)
	_ = c.SetDeadline(limit)
	if _, err := c.Write(flight); err != nil {
		return serverFlight{}, err
	}
	got, _ := readFlight(c, limit)
	f, _ := parseServerFlight(got)
	return f, nil
}

// maxFlight bounds what is kept of a server's first flight.
const maxFlight = 256 << 10

// readFlight reads from c until it has been quiet for earlyFlight after the
// first byte, until limit, or until maxFlight bytes.
func readFlight(c net.Conn, limit time.Time) ([]byte, error) {
	var got []byte
	buf := make([]byte, 16<<10)
	for len(got) < maxFlight {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return got, nil
			}
			return got, err
		}
		next := time.Now().Add(earlyFlight)
		if next.After(limit) {
			next = limit
		}
		_ = c.SetReadDeadline(next)
	}
	return got, nil
}

// flightRelay is a one-connection relay on 127.0.0.1 to a server that
// records the client's first flight (what it sends before any of the
// server's bytes reach it) and the server's first flight (what the server
// sends in answer, until it has been quiet for earlyFlight).
type flightRelay struct {
	ln      net.Listener
	target  string
	timeout time.Duration
	done    chan struct{}

	mu             sync.Mutex
	client, server []byte
	err            error
}

func newFlightRelay(target string, timeout time.Duration) (*flightRelay, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, failf("cannot listen on 127.0.0.1 for the replay check: %s", err)
	}
	r := &flightRelay{ln: ln, target: target, timeout: timeout, done: make(chan struct{})}
	go r.serve()
	return r, nil
}

func (r *flightRelay) addr() string { return r.ln.Addr().String() }

func (r *flightRelay) close() { _ = r.ln.Close() }

// flights returns the two first flights once the server's is complete.
func (r *flightRelay) flights() (client, server []byte, err error) {
	select {
	case <-r.done:
	case <-time.After(r.timeout):
		return nil, nil, errors.New("timed out")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.client, r.server, r.err
}

func (r *flightRelay) serve() {
	cl, err := r.ln.Accept()
	r.ln.Close()
	if err != nil {
		r.finish(err)
		return
	}
	defer cl.Close()
	sv, err := net.DialTimeout("tcp", r.target, r.timeout)
	if err != nil {
		r.finish(err)
		return
	}
	defer sv.Close()
	limit := time.Now().Add(r.timeout)
	_ = cl.SetDeadline(limit)
	_ = sv.SetDeadline(limit)
	recording := true
	go func() {
		buf := make([]byte, 16<<10)
		for {
			n, err := cl.Read(buf)
			r.mu.Lock()
			if recording && len(r.client)+n <= maxFlight {
				r.client = append(r.client, buf[:n]...)
			}
			r.mu.Unlock()
			if n > 0 {
				if _, werr := sv.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				if tc, ok := sv.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
				return
			}
		}
	}()
	first, err := readFlight(sv, limit)
	r.mu.Lock()
	recording = false
	r.server = first
	r.mu.Unlock()
	r.finish(nil)
	_ = sv.SetReadDeadline(limit)
	if _, werr := cl.Write(first); werr != nil || err != nil {
		return
	}
	_, _ = io.Copy(cl, sv)
}

func (r *flightRelay) finish(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
	close(r.done)
}

func writeEarly(w io.Writer, r *earlyReport) {
	writeHeader(w, r.Target, false, r.OpenSSL, "TLSv1.3")
	line(w, "server name", "%s", r.ServerName)
	line(w, "max_early_data", "%d bytes", r.MaxEarlyData)
	line(w, "early data", "%s", r.Status)
	for _, p := range r.Replays {
		line(w, "replay", "%s: %s", p.Host, p.Result)
	}
	fmt.Fprintln(w)
	switch {
	case r.MaxEarlyData == 0:
		line(w, "result", "the server's tickets allow no early data (0-RTT off)")
	case !r.Accepted:
		line(w, "result", "the server allows early data in its tickets but rejected it")
	case r.ReplayAccepted:
		line(w, "result", "early data accepted; a REPLAY of the same ClientHello and early data was ACCEPTED")
	default:
		line(w, "result", "early data accepted; every replay of it was refused")
	}
}
