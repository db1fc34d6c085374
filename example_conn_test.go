package sslsession_test

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/sslsession/sslsession"
)

// A server on which OpenSSL reads and writes the accepted sockets itself:
// net.Listen, then Server on each connection. The client half-closes with
// CloseWrite (close_notify) and still reads the reply.
func ExampleServer() {
	cert := newExampleCert()
	sctx := exampleServerCtx(cert, 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			return
		}
		c, err := sslsession.Server(raw, sctx)
		if err != nil {
			raw.Close()
			return
		}
		defer c.Close()
		req, _ := io.ReadAll(c) // until the client's close_notify
		fmt.Fprintf(c, "got %q", req)
	}()

	cctx := exampleClientCtx(cert, 0)
	c, err := sslsession.Dial("tcp", ln.Addr().String(), &sslsession.DialConfig{Ctx: cctx, ServerName: "localhost"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	c.Write([]byte("hello"))
	c.CloseWrite()
	reply, err := io.ReadAll(c)
	fmt.Println(string(reply), err)
	// Output: got "hello" <nil>
}

// A plaintext exchange before the handshake, as STARTTLS does: the server
// greets, the client asks for TLS, the server agrees, and the TLS handshake
// runs on the same socket. The hook reads one byte at a time so that it
// never reads past the server's last plaintext line.
func ExampleDialConfig_beforeHandshake() {
	cert := newExampleCert()
	sctx := exampleServerCtx(cert, 0)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ln.Close()
	go func() {
		raw, err := ln.Accept()
		if err != nil {
			return
		}
		fmt.Fprint(raw, "220 ready\r\n")
		cmd := make([]byte, len("STARTTLS\r\n"))
		if _, err := io.ReadFull(raw, cmd); err != nil {
			raw.Close()
			return
		}
		fmt.Fprint(raw, "220 go ahead\r\n")
		c, err := sslsession.Server(raw, sctx)
		if err != nil {
			raw.Close()
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()

	readLine := func(conn net.Conn) (string, error) {
		var line []byte
		b := make([]byte, 1)
		for len(line) < 512 {
			if _, err := conn.Read(b); err != nil {
				return "", err
			}
			if b[0] == '\n' {
				return strings.TrimSuffix(string(line), "\r"), nil
			}
			line = append(line, b[0])
		}
		return "", errors.New("line too long")
	}
	cctx := exampleClientCtx(cert, 0)
	c, err := sslsession.Dial("tcp", ln.Addr().String(), &sslsession.DialConfig{
		Ctx: cctx, ServerName: "localhost", Timeout: 5 * time.Second,
		BeforeHandshake: func(conn net.Conn) error {
			for _, send := range []string{"", "STARTTLS\r\n"} {
				if _, err := io.WriteString(conn, send); err != nil {
					return err
				}
				reply, err := readLine(conn)
				if err != nil {
					return err
				}
				if !strings.HasPrefix(reply, "220 ") {
					return fmt.Errorf("server said %q", reply)
				}
			}
			return nil
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	c.Write([]byte("hello"))
	buf := make([]byte, 5)
	_, err = io.ReadFull(c, buf)
	fmt.Println(string(buf), err)
	// Output: hello <nil>
}
