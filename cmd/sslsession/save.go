package main

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/sslsession/sslsession"
)

// sslsession save: connect, and write the session to a file.

type saveFlags struct {
	conn       connFlags
	out        string
	force      bool
	ticketWait time.Duration
}

func newSaveCmd(out io.Writer) *cobra.Command {
	f := &saveFlags{}
	cmd := &cobra.Command{
		Use:   "save host:port -o FILE",
		Short: "Connect and save the session as PEM (like openssl s_client -sess_out)",
		Long: `save makes a full TLS handshake with host:port and writes the session to
FILE as PEM ("-----BEGIN SSL SESSION PARAMETERS-----"), the format that
openssl sess_id and openssl s_client -sess_in read. With TLS 1.3 it first
reads the server's session tickets and saves the session of the last one. A
session that cannot be resumed is saved anyway, and shown as such.

The file holds the session's master key: it is created with mode 0600, and an
existing file is not overwritten unless --force is given (it is then replaced
by a new file with mode 0600).`,
		Example: `  sslsession save example.com:443 -o sess.pem
  sslsession save 127.0.0.1:4433 --cafile ca.pem --servername localhost -o sess.pem --force`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runSave(out, f, args[0])
		},
	}
	f.conn.register(cmd)
	cmd.Flags().StringVarP(&f.out, "out", "o", "", "file to write the session to (required)")
	cmd.Flags().BoolVar(&f.force, "force", false, "replace FILE if it exists")
	cmd.Flags().DurationVar(&f.ticketWait, "ticket-wait", 2*time.Second, "how long to wait for the first TLS 1.3 ticket")
	_ = cmd.MarkFlagRequired("out")
	return cmd
}

func runSave(out io.Writer, f *saveFlags, addr string) error {
	cl, err := newClient(&f.conn, addr, nil)
	if err != nil {
		return err
	}
	if !f.force {
		if _, err := os.Lstat(f.out); err == nil {
			return failf("%s exists; use --force to replace it", f.out)
		}
	}
	ctx, err := cl.newCtx(false)
	if err != nil {
		return err
	}
	c, err := cl.dial(ctx, nil)
	if err != nil {
		return err
	}
	defer c.close()
	flooded := false
	if c.SSL().Version() == sslsession.TLS13 {
		// Not Conn.AwaitSession, which returns with the first ticket: save
		// keeps the last one the server sends (OpenSSL servers send two),
		// as s_client -sess_out does, so it reads until no ticket has come
		// for ticketSettle.
		if _, err := c.collectTickets(false, f.ticketWait, ticketSettle); err != nil {
			return ticketError(addr, err)
		}
		flooded = c.ticketsCapped
	}
	sess, err := c.Session1()
	if err != nil {
		return failf("no session from %s: %s", addr, stripPrefixes(err.Error()))
	}
	defer sess.Close()
	pemData, err := sess.MarshalPEM()
	if err != nil {
		return err
	}
	if err := writeSecret(f.out, pemData, f.force); err != nil {
		return err
	}
	info, err := sess.Info()
	if err != nil {
		return err
	}
	line(out, "saved", "%s", esc(f.out))
	line(out, "protocol", "%s", info.Protocol)
	line(out, "cipher", "%s", esc(info.Cipher))
	line(out, "resumable", "%s", yesNo(info.Resumable))
	line(out, "ticket", "%s", ticketText(info))
	if flooded {
		line(out, "ticket flood", "the server kept sending tickets: saved the %dth, stopped reading there", maxTickets)
	}
	return nil
}

// writeSecret writes data to name with mode 0600. Without replace it fails
// if name exists; with replace it writes a new file beside it and renames
// it over name, so the result has mode 0600 whatever name had.
func writeSecret(name string, data []byte, replace bool) error {
	if !replace {
		fh, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			if errors.Is(err, os.ErrExist) {
				return failf("%s exists; use --force to replace it", name)
			}
			return fileError(err)
		}
		if _, err := fh.Write(data); err != nil {
			fh.Close()
			return fileError(err)
		}
		if err := fh.Close(); err != nil {
			return fileError(err)
		}
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(name), ".sslsession-*")
	if err != nil {
		return fileError(err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fileError(err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fileError(err)
	}
	if err := tmp.Close(); err != nil {
		return fileError(err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fileError(err)
	}
	return nil
}
