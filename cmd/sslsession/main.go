// Command sslsession shows how TLS session resumption behaves, through
// OpenSSL's own session API (SSL_get_session and friends) as the
// github.com/sslsession/sslsession library exposes it.
//
// Usage:
//
//	sslsession check [host:port]          full handshake, then N resumptions, by session ID and by ticket
//	sslsession check VIP:port --rate N    resumption rate through one address (a load balancer)
//	sslsession check host:port --watch D  ticket-key rotation audit
//	sslsession save host:port -o FILE     save a session as PEM (like openssl s_client -sess_out)
//	sslsession resume host:port -i FILE   resume a saved session (like openssl s_client -sess_in)
//	sslsession inspect FILE               show a saved session (like openssl sess_id -text -noout)
//	sslsession bench [host:port]          full vs resumed handshakes per second
//	sslsession version                    OpenSSL versions built against and running with
//
// check and bench without a target start an embedded TLS server on
// 127.0.0.1 with a self-signed certificate made at start, so they work
// without a network.
//
// Exit status: 0 success; 1 when --require-resume was given and the
// session was not resumed, or --require-rate and the rate was below it; 2
// on any error (unreachable host, refused
// connection, TLS alert, certificate failure, unreadable or malformed file,
// bad usage), reported as one line "sslsession: <cause>" on standard error.
//
// docs/cli.md in the repository is the full reference, with the JSON
// schemas of check --json, bench --json and inspect --json.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
