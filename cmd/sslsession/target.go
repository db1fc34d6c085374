package main

import (
	"github.com/sslsession/sslsession/internal/loopback"
)

// target is the server a command talks to: the one named on the command
// line, or an embedded one.
type target struct {
	addr     string
	embedded bool
	trustPEM []byte // the embedded server's certificate, trusted
	srv      *loopback.Server
}

// openTarget returns args[0] as the target, or, with no argument, starts the
// embedded server: an echo server on 127.0.0.1 with a self-signed
// certificate made now, its session cache and tickets on.
func openTarget(args []string) (*target, error) {
	if len(args) > 0 {
		return &target{addr: args[0]}, nil
	}
	srv, err := loopback.Start(loopback.Config{})
	if err != nil {
		return nil, failf("cannot start the embedded server: %s", stripPrefixes(err.Error()))
	}
	return &target{addr: srv.Addr, embedded: true, trustPEM: srv.Cert.CertPEM, srv: srv}, nil
}

func (t *target) close() {
	if t.srv != nil {
		_ = t.srv.Close()
	}
}

// openClient opens the target of args and makes a client for it with the
// connection flags f; the caller closes the target.
func openClient(f *connFlags, args []string) (*target, *client, error) {
	if f.starttls != "" && len(args) == 0 {
		return nil, nil, usageError("--starttls needs a host:port: the embedded server speaks TLS at once")
	}
	tgt, err := openTarget(args)
	if err != nil {
		return nil, nil, err
	}
	cl, err := newClient(f, tgt.addr, tgt.trustPEM)
	if err != nil {
		tgt.close()
		return nil, nil, err
	}
	return tgt, cl, nil
}
