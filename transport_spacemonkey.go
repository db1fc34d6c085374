package sslsession

// #include "conn_cgo.h"
import "C"

import (
	"fmt"
	"io"
	"net"
	"reflect"
	"time"
	"unsafe"

	"github.com/spacemonkeygo/openssl"
)

// bioTransport is the transport for a net.Conn that is not a socket:
// spacemonkeygo's connection, whose SSL reads from and writes to two
// memory BIOs held in Go. Conn drives that SSL with the same steps as on a
// socket; between tries, this transport sends what the write BIO holds to
// the net.Conn and, when OpenSSL wants input, reads once from the net.Conn
// into the read BIO. spacemonkeygo's own Read, Write, Handshake and Close
// are not used: with them, CloseWrite closed the connection, a read could
// not stop when a session ticket arrived, and the peer's close_notify
// closed the connection.
type bioTransport struct {
	oc  *openssl.Conn
	raw net.Conn
	in  readBIO     // spacemonkeygo's read BIO
	out io.WriterTo // its write BIO
}

// readBIO is what bioTransport uses of spacemonkeygo's read BIO.
type readBIO interface {
	// ReadFromOnce reads once from r into the BIO.
	ReadFromOnce(r io.Reader) (int, error)
	// MarkEOF makes the BIO report the end of the stream once it is
	// empty.
	MarkEOF()
}

// bioLayout holds the offsets of spacemonkeygo's Conn.into_ssl and
// Conn.from_ssl, found by name and method set once, as layout does for the
// fields ssl.go needs: if the pinned version ever changes shape, a Conn
// over a net.Conn that is not a socket reports ErrUnsupported.
var bioLayout struct {
	err     error
	in, out reflect.StructField
}

func init() {
	t := reflect.TypeOf((*openssl.Conn)(nil)).Elem()
	field := func(name string, want reflect.Type) reflect.StructField {
		f, ok := t.FieldByName(name)
		if !ok || len(f.Index) != 1 || f.Type.Kind() != reflect.Pointer || !f.Type.Implements(want) {
			if bioLayout.err == nil {
				bioLayout.err = fmt.Errorf("%w: github.com/spacemonkeygo/openssl Conn.%s has an unexpected shape", ErrUnsupported, name)
			}
		}
		return f
	}
	bioLayout.in = field("into_ssl", reflect.TypeOf((*readBIO)(nil)).Elem())
	bioLayout.out = field("from_ssl", reflect.TypeOf((*io.WriterTo)(nil)).Elem())
}

// newBioTransport makes spacemonkeygo's client or server connection from
// sslCtx over conn, and its SSL.
func newBioTransport(conn net.Conn, sslCtx *openssl.Ctx, server bool) (*bioTransport, *SSL, error) {
	if bioLayout.err != nil {
		return nil, nil, bioLayout.err
	}
	var oc *openssl.Conn
	var err error
	if server {
		oc, err = openssl.Server(conn, sslCtx)
	} else {
		oc, err = openssl.Client(conn, sslCtx)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrOpenSSL, err)
	}
	s, err := FromConn(oc)
	if err != nil {
		return nil, nil, err
	}
	if err := adopt(s); err != nil {
		return nil, nil, err
	}
	// The fields hold the BIOs' Go halves; reflect.NewAt reaches them
	// without the read-only mark of an unexported field.
	base := unsafe.Pointer(oc)
	t := &bioTransport{
		oc:  oc,
		raw: conn,
		in:  reflect.NewAt(bioLayout.in.Type, unsafe.Add(base, bioLayout.in.Offset)).Elem().Interface().(readBIO),
		out: reflect.NewAt(bioLayout.out.Type, unsafe.Add(base, bioLayout.out.Offset)).Elem().Interface().(io.WriterTo),
	}
	return t, s, nil
}

// flush sends what the write BIO holds. The BIO's own lock orders
// concurrent flushes; the bytes went in under the SSL's lock, in order.
func (t *bioTransport) flush() error {
	_, err := t.out.WriteTo(t.raw)
	return err
}

// fill reads once from the net.Conn into the read BIO; at the end of the
// stream the BIO reports it to OpenSSL, which tells a close_notify from a
// truncation.
func (t *bioTransport) fill() error {
	_, err := t.in.ReadFromOnce(t.raw)
	if err == io.EOF {
		t.in.MarkEOF()
		return nil
	}
	return err
}

func (t *bioTransport) run(s *step) error {
	for {
		s.try()
		// A read flushes only when it wrote (an alert, a key update's
		// answer): a Write holds the write BIO's lock while it flushes,
		// and a Read waiting for that lock while the peer waits for this
		// side to read would leave both waiting.
		if s.op != C.SSLSESS_OP_READ || s.r.wrote != 0 {
			if err := t.flush(); err != nil {
				return err
			}
		}
		// The write BIO takes everything: OpenSSL never wants to write.
		if s.r.st != C.SSLSESS_IO_WANT_READ || s.op == C.SSLSESS_OP_SHUTDOWN || (s.stop != nil && s.stop()) {
			return nil
		}
		if err := t.fill(); err != nil {
			return err
		}
	}
}

// closeNotify runs s under the write deadline already set; if the peer
// does not take the alert within closeNotifyTimeout, the net.Conn is
// closed under it (Close closes it anyway).
func (t *bioTransport) closeNotify(s *step) error {
	s.try()
	timer := time.AfterFunc(closeNotifyTimeout, func() { _ = t.raw.Close() })
	defer timer.Stop()
	return t.flush()
}

// close closes the net.Conn. spacemonkeygo's Close is not called: it
// would send close_notify even where Conn must not (after a failed write,
// keeping the session resumable against the man page's rule), and after a
// CloseWrite it would wait for the peer's. spacemonkeygo's finalizer
// frees the SSL.
func (t *bioTransport) close() error { return t.raw.Close() }

func (t *bioTransport) spacemonkey() *openssl.Conn { return t.oc }
