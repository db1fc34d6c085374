package main

import (
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// run executes the command line args (without the program name), writing
// reports to stdout and the one-line error to stderr, and returns the exit
// status.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	code, msg := exitCode(err)
	if msg != "" {
		// The message may quote a peer or a file: nothing in it may
		// reach the terminal as a control sequence.
		fmt.Fprintf(stderr, "sslsession: %s\n", terminalSafe(msg))
	}
	return code
}

func newRootCmd(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:   "sslsession",
		Short: "See how TLS session resumption behaves, through OpenSSL's session API",
		Long: `sslsession shows how TLS session resumption behaves against a server, or
against an embedded OpenSSL server when no host:port is given: whether a
session resumes by session ID and by ticket, how much faster a resumed
handshake is, and what a saved session holds.

Exit status: 0 success, 1 --require-resume and not resumed (or
--require-rate and the rate below it), 2 any error.`,
		Example: `  sslsession check
  sslsession check example.com:443 --tls1.2 --require-resume
  sslsession save example.com:443 -o sess.pem && sslsession resume example.com:443 -i sess.pem
  sslsession inspect sess.pem
  sslsession bench --duration 2s
  sslsession version`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return usageError("%s (see '%s --help')", err, cmd.CommandPath())
	})
	root.AddCommand(
		newCheckCmd(stdout),
		newSaveCmd(stdout),
		newResumeCmd(stdout),
		newInspectCmd(stdout),
		newBenchCmd(stdout),
		newVersionCmd(stdout),
		newReferenceCmd(stdout),
	)
	for _, c := range root.Commands() {
		wrapArgs(c)
	}
	return root
}

// wrapArgs turns cobra's argument-count errors into usage errors that point
// at --help.
func wrapArgs(c *cobra.Command) {
	check := c.Args
	if check == nil {
		return
	}
	c.Args = func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError("%s: %s (see '%s --help')", cmd.Name(), err, cmd.CommandPath())
		}
		return nil
	}
}
