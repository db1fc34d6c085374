package main

import (
	"io"
	"runtime"

	"github.com/spf13/cobra"

	"github.com/sslsession/sslsession"
)

// versionReport is what version prints.
type versionReport struct {
	BuildOpenSSL       string `json:"build_openssl"`        // headers the binary was compiled against
	RuntimeOpenSSL     string `json:"runtime_openssl"`      // library loaded now
	RuntimeOpenSSLText string `json:"runtime_openssl_text"` // its own version line
	MaxTLS             string `json:"max_tls"`              // newest protocol it speaks
	Go                 string `json:"go"`
}

func newVersionCmd(out io.Writer) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Show the OpenSSL the binary was built against and the one it runs with",
		Long: `version shows the OpenSSL version whose headers the binary was compiled
against, the OpenSSL library it loaded at run time, the newest TLS version
that library speaks, and the Go version. When the two OpenSSL versions do not
match (or OpenSSL 1.0.2 lacks its thread callbacks) it says so and exits with
status 2: no other command can run safely then.`,
		Example: `  sslsession version
  sslsession version --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			rep := versionReport{
				BuildOpenSSL:       sslsession.BuildVersion().String(),
				RuntimeOpenSSL:     sslsession.RuntimeVersion().String(),
				RuntimeOpenSSLText: sslsession.RuntimeVersionText(),
				MaxTLS:             sslsession.MaxSupportedVersion().String(),
				Go:                 runtime.Version(),
			}
			if asJSON {
				if err := writeJSON(out, rep); err != nil {
					return err
				}
			} else {
				line(out, "built against", "OpenSSL %s", rep.BuildOpenSSL)
				line(out, "running with", "%s", rep.RuntimeOpenSSLText)
				line(out, "newest TLS", "%s", rep.MaxTLS)
				line(out, "go", "%s", rep.Go)
			}
			if err := sslsession.CheckSetup(); err != nil {
				return failf("%s", stripPrefixes(err.Error()))
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the versions as JSON")
	return cmd
}
