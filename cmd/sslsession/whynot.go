package main

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/sslsession/sslsession"
)

// offered is what the client offered in a resumption attempt; its JSON form
// is documented in docs/cli.md. Lengths only: the session ID, ticket and
// keys are never shown.
type offered struct {
	Protocol        string `json:"protocol"`          // the session's protocol
	Cipher          string `json:"cipher"`            // the session's cipher
	SessionIDLength int    `json:"session_id_length"` // bytes of the session ID offered (0: none)
	TicketLength    int    `json:"ticket_length"`     // bytes of the ticket offered (0: none)

	version sslsession.Version
	id      []byte
}

// offerOf summarizes the session the client offers; noTicket says the client
// refuses tickets (it then offers only the session ID).
func offerOf(s *sslsession.Session, noTicket bool) (*offered, error) {
	info, err := s.Info()
	if err != nil {
		return nil, err
	}
	o := &offered{
		Protocol: info.Protocol.String(), Cipher: info.Cipher, version: info.Protocol,
	}
	if info.Protocol != sslsession.TLS13 {
		// A TLS 1.3 client session's ID is a placeholder OpenSSL makes up;
		// the server never sees it as a session ID.
		o.SessionIDLength, o.id = len(info.ID), info.ID
	}
	if info.HasTicket && !noTicket {
		o.TicketLength = info.TicketLength
	}
	return o, nil
}

func (o *offered) String() string {
	var what []string
	if o.SessionIDLength > 0 {
		what = append(what, fmt.Sprintf("session ID %d bytes", o.SessionIDLength))
	}
	if o.TicketLength > 0 {
		what = append(what, fmt.Sprintf("ticket %d bytes", o.TicketLength))
	}
	if len(what) == 0 {
		what = append(what, "neither session ID nor ticket")
	}
	return fmt.Sprintf("a %s session (%s, %s)", o.Protocol, o.Cipher, strings.Join(what, ", "))
}

// outOfRange says why the client cannot offer o at all: OpenSSL offers a
// session only under its own protocol.
func (o *offered) outOfRange(min, max sslsession.Version) string {
	switch {
	case max != 0 && o.version > max, min != 0 && o.version < min:
		return fmt.Sprintf("the session is %s, outside the protocols the client allows (%s): OpenSSL offers a session only under its own protocol",
			o.Protocol, rangeText(min, max))
	}
	return ""
}

func rangeText(min, max sslsession.Version) string {
	switch {
	case min != 0 && min == max:
		return min.String() + " only"
	case min != 0 && max != 0:
		return min.String() + " to " + max.String()
	case max != 0:
		return "up to " + max.String()
	case min != 0:
		return min.String() + " and up"
	}
	return "any"
}

// whyNot says, for a handshake that did not resume, what the client offered
// and what the server answered: the protocol and cipher it chose, and the
// session ID and tickets of the new session (next, after the handshake and,
// for TLS 1.3, the tickets; tickets counts those).
func whyNot(o *offered, c *tlsConn, next *sslsession.Session, tickets int) string {
	if o == nil {
		return "the client offered no session"
	}
	var ans []string
	proto := c.SSL().Version()
	if proto.String() != o.Protocol {
		ans = append(ans, "another protocol ("+proto.String()+")")
	}
	if cipher := c.SSL().Cipher(); cipher != o.Cipher {
		ans = append(ans, "another cipher ("+cipher+")")
	}
	var info sslsession.Info
	if next != nil {
		info, _ = next.Info()
	}
	if proto == sslsession.TLS13 {
		switch {
		case c.ticketsCapped:
			ans = append(ans, fmt.Sprintf("new tickets without end (stopped counting at %d)", tickets))
		case tickets > 0:
			ans = append(ans, fmt.Sprintf("%d new ticket(s)", tickets))
		default:
			ans = append(ans, "no ticket")
		}
	} else {
		switch {
		case len(info.ID) == 0:
			ans = append(ans, "no session ID")
		case bytes.Equal(info.ID, o.id):
			ans = append(ans, "the same session ID")
		default:
			ans = append(ans, "a new session ID")
		}
		if info.HasTicket {
			ans = append(ans, "a new ticket")
		} else {
			ans = append(ans, "no ticket")
		}
	}
	return fmt.Sprintf("offered %s; the server made a full handshake with %s", o, strings.Join(ans, ", "))
}
