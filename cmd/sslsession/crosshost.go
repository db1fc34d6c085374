package main

import (
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/spacemonkeygo/openssl"

	"github.com/sslsession/sslsession"
)

// check with several hosts: each host's session offered to every host, for
// every mechanism of every protocol checked. Sessions resume only within
// the client context that made them, and OpenSSL servers check the SNI name
// on resumption: one client context per protocol and mechanism serves every
// host, with one server name.

// crossReport is the result of check with several hosts; its JSON form is
// documented in docs/cli.md.
type crossReport struct {
	Hosts            []string          `json:"hosts"`
	OpenSSL          string            `json:"openssl"`
	ServerName       string            `json:"server_name"`
	Verified         bool              `json:"verified"`
	Protocols        []string          `json:"protocols"`         // newest first
	ProtocolsRefused []crossRefused    `json:"protocols_refused"` // protocols a host refused, not checked
	Resumptions      []crossResumption `json:"resumptions"`
	// TicketsFlooded lists the hosts that were still sending TLS 1.3
	// tickets after a handshake when check stopped counting them.
	TicketsFlooded []string `json:"tls13_tickets_flooded"`
	// Resumed: under every protocol checked, every ordered pair of distinct
	// hosts resumed by at least one mechanism (what --require-resume
	// tests).
	Resumed bool `json:"resumed"`
}

// crossRefused is a protocol one host refused.
type crossRefused struct {
	Protocol string `json:"protocol"`
	Host     string `json:"host"`
	Error    string `json:"error"`
}

// crossResumption is one offer: a session made by a full handshake with
// From, offered to To.
type crossResumption struct {
	From        string  `json:"from"`
	To          string  `json:"to"`
	Protocol    string  `json:"protocol"`
	Mechanism   string  `json:"mechanism"` // "session_id" or "ticket"
	Resumed     bool    `json:"resumed"`
	WhyNot      string  `json:"why_not"` // "" when resumed
	HandshakeMS float64 `json:"handshake_ms"`
}

// Mechanism names in the cross-host report.
const (
	mechSessionID = "session_id"
	mechTicket    = "ticket"
)

// crossHostClients makes one client per host, all with one server name:
// --servername, or the host part they share.
func crossHostClients(f *connFlags, addrs []string) ([]*client, error) {
	seen := map[string]bool{}
	name := f.serverName
	for _, a := range addrs {
		host, port, err := net.SplitHostPort(a)
		if err != nil || host == "" || port == "" {
			return nil, usageError("target %q is not host:port", a)
		}
		if seen[a] {
			return nil, usageError("host %s is given twice", a)
		}
		seen[a] = true
		if f.serverName == "" && name != "" && name != host {
			return nil, usageError("the hosts have different names (%s, %s): give the one name their certificates share with --servername, which is sent to every host (servers resume a session only under the name it was made for)", name, host)
		}
		if f.serverName == "" {
			name = host
		}
	}
	ff := *f
	ff.serverName = name
	var cls []*client
	for _, a := range addrs {
		cl, err := newClient(&ff, a, nil)
		if err != nil {
			return nil, err
		}
		cls = append(cls, cl)
	}
	if err := distinctEndpoints(cls); err != nil {
		return nil, err
	}
	return cls, nil
}

// distinctEndpoints connects to each host (TCP only) and refuses two hosts
// that reach one endpoint: the address actually connected to, IP and port,
// after name resolution. Written two ways (127.0.0.1:443 and
// 127.0.0.1:0443, host:443 and host:https, two names of one address), one
// server would resume its own sessions and pass for a fleet.
func distinctEndpoints(cls []*client) error {
	seen := map[string]string{}
	for _, cl := range cls {
		d := net.Dialer{Timeout: cl.timeout}
		conn, err := d.Dial("tcp", cl.addr)
		if err != nil {
			return netError(cl.addr, err)
		}
		ep := conn.RemoteAddr().String()
		conn.Close()
		if first, dup := seen[ep]; dup {
			return usageError("%s and %s are one server (both reach %s): give each host once; cross-host resumption needs distinct servers", first, cl.addr, ep)
		}
		seen[ep] = cl.addr
	}
	return nil
}

// crossCheck runs the cross-host check.
func crossCheck(cls []*client, ticketWait time.Duration) (*crossReport, error) {
	rep := &crossReport{
		OpenSSL:          sslsession.RuntimeVersion().String(),
		ServerName:       cls[0].serverName,
		Verified:         cls[0].verify,
		Protocols:        []string{},
		ProtocolsRefused: []crossRefused{},
		Resumptions:      []crossResumption{},
		TicketsFlooded:   []string{},
	}
	for _, cl := range cls {
		rep.Hosts = append(rep.Hosts, cl.addr)
	}
	protos, err := crossProtocols(cls)
	if err != nil {
		return nil, err
	}
	rep.Resumed = true
	flooded := map[string]bool{}
	for _, p := range protos {
		pinned := make([]*client, len(cls))
		for i, cl := range cls {
			c := *cl
			c.min, c.max = p, p
			pinned[i] = &c
		}
		if refused, err := crossSpeaks(pinned); err != nil {
			return nil, err
		} else if refused != nil {
			rep.ProtocolsRefused = append(rep.ProtocolsRefused, *refused)
			continue
		}
		rep.Protocols = append(rep.Protocols, p.String())
		mechs := []string{mechSessionID, mechTicket}
		if p == sslsession.TLS13 {
			mechs = []string{mechTicket}
		}
		var rs []crossResumption
		for _, m := range mechs {
			got, err := crossMechanism(pinned, p, m, ticketWait, flooded)
			if err != nil {
				return nil, err
			}
			rs = append(rs, got...)
		}
		rep.Resumptions = append(rep.Resumptions, rs...)
		if len(unresumedPairs(rep.Hosts, rs)) > 0 {
			rep.Resumed = false
		}
	}
	if len(rep.Protocols) == 0 {
		return nil, failf("the hosts share no protocol: %s", rep.ProtocolsRefused[0].Error)
	}
	for _, h := range rep.Hosts {
		if flooded[h] {
			rep.TicketsFlooded = append(rep.TicketsFlooded, h)
		}
	}
	return rep, nil
}

// crossProtocols returns the protocols to check, newest first: the one the
// flags pin, or those the hosts negotiate with a client that allows any,
// with TLS 1.2 after TLS 1.3. This first handshake with each host is also
// where an unreachable host or a certificate failure ends the check.
func crossProtocols(cls []*client) ([]sslsession.Version, error) {
	if cls[0].min != 0 && cls[0].min == cls[0].max {
		return []sslsession.Version{cls[0].min}, nil
	}
	ctx, err := cls[0].newCtx(false)
	if err != nil {
		return nil, err
	}
	var protos []sslsession.Version
	for _, cl := range cls {
		c, err := cl.dial(ctx, nil)
		if err != nil {
			return nil, err
		}
		v := c.SSL().Version()
		c.close()
		if !slices.Contains(protos, v) {
			protos = append(protos, v)
		}
		if v == sslsession.TLS13 && !slices.Contains(protos, sslsession.TLS12) {
			protos = append(protos, sslsession.TLS12)
		}
	}
	slices.SortFunc(protos, func(a, b sslsession.Version) int { return int(b) - int(a) })
	return protos, nil
}

// crossSpeaks makes a handshake with each host under the one protocol the
// clients are pinned to; the first host that refuses it is returned.
func crossSpeaks(cls []*client) (*crossRefused, error) {
	ctx, err := cls[0].newCtx(false)
	if err != nil {
		return nil, err
	}
	for _, cl := range cls {
		c, err := cl.dial(ctx, nil)
		if err != nil {
			_, msg := exitCode(err)
			return &crossRefused{Protocol: cl.min.String(), Host: cl.addr, Error: msg}, nil
		}
		c.close()
	}
	return nil, nil
}

// crossMechanism offers, for every ordered pair of hosts (a host with
// itself included, the baseline), a session made by a new full handshake
// with the first to the second, by one mechanism. One client context serves
// every host. The hosts that kept sending tickets are set in flooded.
func crossMechanism(cls []*client, p sslsession.Version, mech string, ticketWait time.Duration, flooded map[string]bool) ([]crossResumption, error) {
	noTicket := mech == mechSessionID
	ctx, err := cls[0].newCtx(noTicket)
	if err != nil {
		return nil, err
	}
	tls13 := p == sslsession.TLS13
	var out []crossResumption
	for _, from := range cls {
		for _, to := range cls {
			r := crossResumption{From: from.addr, To: to.addr, Protocol: p.String(), Mechanism: mech}
			full, err := from.dial(ctx, nil)
			if err != nil {
				return nil, err
			}
			if tls13 {
				if _, err := full.collectTickets(false, ticketWait, ticketSettle); err != nil {
					full.close()
					return nil, ticketError(from.addr, err)
				}
				flooded[from.addr] = flooded[from.addr] || full.ticketsCapped
			}
			sess, err := full.Session1()
			full.close()
			if err != nil {
				return nil, failf("no session after the handshake with %s: %s", from.addr, stripPrefixes(err.Error()))
			}
			r.Resumed, r.WhyNot, r.HandshakeMS, err = crossOffer(to, ctx, sess, noTicket, from.addr, tls13, ticketWait, flooded)
			sess.Close()
			if err != nil {
				return nil, err
			}
			out = append(out, r)
		}
	}
	return out, nil
}

// crossOffer offers sess, made with host from, to host to, and says whether
// it resumed and, if not, why.
func crossOffer(to *client, ctx *openssl.Ctx, sess *sslsession.Session, noTicket bool, from string,
	tls13 bool, ticketWait time.Duration, flooded map[string]bool) (bool, string, float64, error) {
	info, err := sess.Info()
	if err != nil {
		return false, "", 0, err
	}
	switch {
	case !info.Resumable:
		return false, fmt.Sprintf("the client offered no session: the session made with %s is not resumable", from), 0, nil
	case noTicket && len(info.ID) == 0:
		return false, fmt.Sprintf("the client offered no session: %s sent no session ID", from), 0, nil
	case !noTicket && !info.HasTicket:
		return false, fmt.Sprintf("the client offered no session: %s sent no ticket", from), 0, nil
	}
	off, err := offerOf(sess, noTicket)
	if err != nil {
		return false, "", 0, err
	}
	c, err := to.dial(ctx, sess)
	if err != nil {
		return false, "", 0, err
	}
	defer c.close()
	ms := durationMS(c.handshake)
	if c.SessionReused() {
		return true, "", ms, nil
	}
	tickets := 0
	if tls13 {
		if tickets, err = c.collectTickets(false, ticketWait, ticketSettle); err != nil {
			return false, "", 0, ticketError(to.addr, err)
		}
		flooded[to.addr] = flooded[to.addr] || c.ticketsCapped
	}
	next, err := c.Session1()
	if err != nil {
		next = nil
	}
	why := whyNot(off, c, next, tickets)
	if next != nil {
		next.Close()
	}
	return false, why, ms, nil
}

// unresumedPairs returns the ordered pairs of distinct hosts, "A -> B" by
// their letters, that no mechanism of rs resumed.
func unresumedPairs(hosts []string, rs []crossResumption) []string {
	ok := map[[2]string]bool{}
	for _, r := range rs {
		if r.Resumed {
			ok[[2]string{r.From, r.To}] = true
		}
	}
	var out []string
	for i, a := range hosts {
		for j, b := range hosts {
			if i != j && !ok[[2]string{a, b}] {
				out = append(out, hostLetter(i)+" -> "+hostLetter(j))
			}
		}
	}
	return out
}

// hostLetter names the i-th host in the human report: A, B, ... Z, H27 ...
func hostLetter(i int) string {
	if i < 26 {
		return string(rune('A' + i))
	}
	return fmt.Sprintf("H%d", i+1)
}

func writeCross(w io.Writer, r *crossReport) {
	index := map[string]int{}
	for i, h := range r.Hosts {
		index[h] = i
		label := ""
		if i == 0 {
			label = "hosts"
		}
		line(w, label, "%s  %s", hostLetter(i), h)
	}
	line(w, "openssl", "%s", r.OpenSSL)
	line(w, "protocols", "%s", strings.Join(r.Protocols, ", "))
	for _, p := range r.ProtocolsRefused {
		line(w, "not checked", "%s (%s)", p.Protocol, p.Error)
	}
	line(w, "server name", "%s (sent to every host)", r.ServerName)
	for _, h := range r.TicketsFlooded {
		line(w, "ticket flood", "%s %s kept sending tickets: counting stopped at %d", hostLetter(index[h]), h, maxTickets)
	}
	if r.Verified {
		line(w, "certificate", "verified for %s", r.ServerName)
	} else {
		line(w, "certificate", "not verified (--insecure)")
	}
	// One matrix per protocol and mechanism: rows offer the session made
	// with the host, columns receive it.
	type key struct{ proto, mech string }
	var order []key
	cells := map[key]map[[2]int]bool{}
	for _, x := range r.Resumptions {
		k := key{x.Protocol, x.Mechanism}
		if cells[k] == nil {
			cells[k] = map[[2]int]bool{}
			order = append(order, k)
		}
		cells[k][[2]int{index[x.From], index[x.To]}] = x.Resumed
	}
	mechName := map[string]string{mechSessionID: "session ID", mechTicket: "ticket"}
	for _, k := range order {
		fmt.Fprintln(w)
		var head strings.Builder
		for j := range r.Hosts {
			fmt.Fprintf(&head, "%-8s", "to "+hostLetter(j))
		}
		line(w, k.proto+" "+mechName[k.mech], "%s", strings.TrimRight(head.String(), " "))
		for i := range r.Hosts {
			var row strings.Builder
			for j := range r.Hosts {
				fmt.Fprintf(&row, "%-8s", yesNo(cells[k][[2]int{i, j}]))
			}
			line(w, "  from "+hostLetter(i), "%s", strings.TrimRight(row.String(), " "))
		}
	}
	var whys []crossResumption
	for _, x := range r.Resumptions {
		if !x.Resumed {
			whys = append(whys, x)
		}
	}
	if len(whys) > 0 {
		fmt.Fprintln(w)
		fmt.Fprintln(w, "why not")
		for _, x := range whys {
			fmt.Fprintf(w, "  %s %s %s -> %s: %s\n", x.Protocol, mechName[x.Mechanism], hostLetter(index[x.From]), hostLetter(index[x.To]), x.WhyNot)
		}
	}
	fmt.Fprintln(w)
	var missing []string
	for _, p := range r.Protocols {
		var rs []crossResumption
		for _, x := range r.Resumptions {
			if x.Protocol == p {
				rs = append(rs, x)
			}
		}
		if pairs := unresumedPairs(r.Hosts, rs); len(pairs) > 0 {
			missing = append(missing, fmt.Sprintf("%s: %s", p, strings.Join(pairs, ", ")))
		}
	}
	if r.Resumed {
		line(w, "result", "cross-host resumption confirmed (every host resumed every other host's sessions under %s)", strings.Join(r.Protocols, " and "))
	} else {
		line(w, "result", "cross-host resumption NOT confirmed (nothing resumed for %s)", strings.Join(missing, "; "))
	}
}

// errCrossNotResumed ends check --require-resume with several hosts.
var errCrossNotResumed = &cliError{code: exitNoResume, msg: "sessions were not resumed across every pair of hosts (--require-resume)"}
