package test

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
	"github.com/sslsession/sslsession/keyfile"
)

// Mixed fleets: Debian's nginx and haproxy (OpenSSL 3.0) beside an
// sslsession server (whichever OpenSSL this build links) on one name, all
// three with the same certificate and ticket keys. A crypto/tls client with
// one session cache for "localhost" presents every ticket to every server.

// mixedClient is a crypto/tls client that records the last ticket it got.
type mixedClient struct {
	cfg  *tls.Config
	mu   sync.Mutex
	last []byte
	tls.ClientSessionCache
}

func newMixedClient(t testing.TB, v sslsession.Version) *mixedClient {
	mc := &mixedClient{ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	mc.cfg = goTLSClient(t, v)
	mc.cfg.ClientSessionCache = mc
	return mc
}

func (mc *mixedClient) Put(key string, cs *tls.ClientSessionState) {
	if cs != nil {
		if ticket, _, err := cs.ResumptionState(); err == nil {
			mc.mu.Lock()
			mc.last = bytes.Clone(ticket)
			mc.mu.Unlock()
		}
	}
	mc.ClientSessionCache.Put(key, cs)
}

// lastName is the key name of the last ticket received.
func (mc *mixedClient) lastName(t testing.TB) [16]byte {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	n, ok := sslsession.TicketKeyName(mc.last)
	require.True(t, ok, "no ticket received")
	return n
}

// peer is one server of the mixed fleet.
type peer struct {
	name string
	addr string
	http bool // speaks HTTP (nginx, haproxy) rather than echo
}

// dial connects, exchanges one request (so TLS 1.3 tickets are read) and
// reports whether the handshake resumed.
func (mc *mixedClient) dial(t testing.TB, p peer) bool {
	t.Helper()
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", p.addr, mc.cfg)
	require.NoError(t, err, p.name)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	if p.http {
		_, err = io.WriteString(c, "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n")
		require.NoError(t, err)
		resp, err := io.ReadAll(c)
		require.NoError(t, err, p.name)
		require.Contains(t, string(resp), "200", p.name)
	} else {
		_, err = c.Write([]byte("ping"))
		require.NoError(t, err)
		_, err = io.ReadFull(c, make([]byte, 4))
		require.NoError(t, err)
	}
	return c.ConnectionState().DidResume
}

func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// waitListening waits until addr accepts connections or the process ends.
func waitListening(t testing.TB, addr string, done <-chan struct{}, log fmt.Stringer) {
	t.Helper()
	require.NoError(t, loopback.WaitListening(addr, 10*time.Second, done), "%s", log)
}

// startProc runs a foreground server until the test ends.
func startProc(t testing.TB, addr string, name string, args ...string) *exec.Cmd {
	t.Helper()
	var log lockedBuffer
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = &log, &log
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("%s output:\n%s", name, log.String())
		}
	})
	waitListening(t, addr, done, &log)
	return cmd
}

// certFiles writes the test certificate and key; combined is haproxy's
// crt file (certificate then key).
func certFiles(t testing.TB, dir string) (cert, key, combined string) {
	t.Helper()
	c := sesstest.Cert(t)
	cert, key, combined = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), filepath.Join(dir, "combined.pem")
	require.NoError(t, os.WriteFile(cert, c.CertPEM, 0o600))
	require.NoError(t, os.WriteFile(key, c.KeyPEM, 0o600))
	require.NoError(t, os.WriteFile(combined, append(append([]byte{}, c.CertPEM...), c.KeyPEM...), 0o600))
	return cert, key, combined
}

// nginxSessionIDContext is the session ID context nginx gives an http
// server block without client certificates (ngx_ssl_session_id_context):
// SHA-1 over "HTTP" and the SHA-1 of each certificate. OpenSSL resumes a
// session only on a context with the same one, so the sslsession servers
// of an nginx fleet set it too.
func nginxSessionIDContext(t testing.TB) []byte {
	blk, _ := pem.Decode(sesstest.Cert(t).CertPEM)
	require.NotNil(t, blk)
	_, err := x509.ParseCertificate(blk.Bytes)
	require.NoError(t, err)
	certSum := sha1.Sum(blk.Bytes)
	h := sha1.New()
	h.Write([]byte("HTTP"))
	h.Write(certSum[:])
	return h.Sum(nil)
}

// haproxySessionIDContext is haproxy's, the same for every bind line (read
// from a ticket haproxy issued: the session's sid_ctx field).
var haproxySessionIDContext = []byte("haproxy")

// ringServer is an sslsession server with ring as its ticket keys and the
// peer's session ID context.
func ringServer(t testing.TB, v sslsession.Version, sidCtx []byte, ring []sslsession.TicketRingKey) (*sslsession.Ctx, peer) {
	t.Helper()
	oc := sesstest.ServerCtx(t, v, loopback.Config{NoCache: true, SessionIDContext: sidCtx})
	sc, err := sslsession.NewCtx(oc)
	require.NoError(t, err)
	require.NoError(t, sc.SetTicketKeys(ring))
	return sc, peer{name: "sslsession", addr: sesstest.Serve(t, oc).Addr}
}

// ticketKeyOfSize makes a key of nginx's 48- or 80-byte kind.
func ticketKeyOfSize(t testing.TB, size int) sslsession.TicketKey {
	t.Helper()
	if size == sslsession.TicketKeySize {
		k, err := sslsession.NewTicketKey()
		require.NoError(t, err)
		return k
	}
	b := make([]byte, size)
	_, err := io.ReadFull(randReader{}, b)
	require.NoError(t, err)
	k, err := sslsession.ParseTicketKey(b)
	require.NoError(t, err)
	return k
}

type randReader struct{}

func (randReader) Read(p []byte) (int, error) {
	k, err := sslsession.NewTicketKey()
	if err != nil {
		return 0, err
	}
	return copy(p, k.Bytes()), nil
}

// rotation is a ring before and after one rotation: before, k1 encrypts
// and k2 is published next (k0 an older key); after, k2 encrypts, k3 is
// the next one and k1 still decrypts.
type rotation struct {
	k0, k1, k2, k3 sslsession.TicketKey
	before, after  []sslsession.TicketRingKey
}

func newRotation(t testing.TB, size int) rotation {
	now := time.Now()
	r := rotation{k0: ticketKeyOfSize(t, size), k1: ticketKeyOfSize(t, size), k2: ticketKeyOfSize(t, size), k3: ticketKeyOfSize(t, size)}
	r.before = []sslsession.TicketRingKey{
		{Key: r.k0, Encrypt: true, Start: now.Add(-2 * time.Hour)},
		{Key: r.k1, Encrypt: true, Start: now.Add(-time.Hour)},
		{Key: r.k2, Encrypt: true, Start: now.Add(time.Hour)},
	}
	r.after = []sslsession.TicketRingKey{
		{Key: r.k1, Encrypt: true, Start: now.Add(-time.Hour)},
		{Key: r.k2, Encrypt: true, Start: now.Add(-time.Second)},
		{Key: r.k3, Encrypt: true, Start: now.Add(time.Hour)},
	}
	return r
}

// resumes is whether a ticket issued by issuer resumes on server. A server
// resumes its own; tickets cross between the peers (OpenSSL 3.0) and this
// build's OpenSSL except: with 1.0.2 not at all, as it has no extended
// master secret (RFC 7627) and 1.1.0+ does not resume across that; with
// 1.1.1 only from it to the peers, as 3.0 sessions carry their key-exchange
// group, a session field 1.1.1 cannot decode.
func resumes(issuer, server peer) bool {
	switch {
	case issuer.name == server.name:
		return true
	case sesstest.Is102():
		return false
	case is111() && issuer.http && !server.http:
		return false
	}
	return true
}

func is111() bool {
	v := sslsession.RuntimeVersion()
	return v.Major() == 1 && v.Minor() == 1
}

// checkBothWays: a ticket issued by each server resumes on the other (see
// resumes), every server resumes its own, and every new ticket is under
// want.
func checkBothWays(t *testing.T, v sslsession.Version, a, b peer, want sslsession.TicketKey) {
	t.Helper()
	for _, pair := range [][2]peer{{a, b}, {b, a}} {
		mc := newMixedClient(t, v)
		require.False(t, mc.dial(t, pair[0]), "first handshake with %s", pair[0].name)
		require.Equal(t, want.Name(), mc.lastName(t), "%s issues under the ring's encrypting key", pair[0].name)
		issuer, full := pair[0], true
		for i, to := range []peer{pair[1], pair[0]} {
			got := mc.dial(t, to)
			// A 3.0 peer's ticket reissued on resuming a 1.1.1 session may
			// lack the group field (haproxy's does, nginx's does not): the
			// rule holds for tickets of full handshakes.
			if full || !is111() || !issuer.http || to.http {
				assert.Equal(t, resumes(issuer, to), got, "step %d: %s's ticket on %s", i, issuer.name, to.name)
			}
			assert.Equal(t, want.Name(), mc.lastName(t))
			if !got || v == sslsession.TLS13 {
				issuer, full = to, !got // a new ticket (TLS 1.2 keeps an unrenewed one)
			}
		}
		own := newMixedClient(t, v)
		require.False(t, own.dial(t, pair[0]))
		assert.True(t, own.dial(t, pair[0]), "%s resumes its own ticket", pair[0].name)
	}
}

// nginxConf is a minimal nginx configuration: one TLS server answering 200,
// tickets only (no session cache), the key files in order.
func nginxConf(dir, addr, cert, key string, v sslsession.Version, keyFiles []string) string {
	proto := "TLSv1.2"
	if v == sslsession.TLS13 {
		proto = "TLSv1.3"
	}
	var keys strings.Builder
	for _, f := range keyFiles {
		fmt.Fprintf(&keys, "    ssl_session_ticket_key %s;\n", f)
	}
	return loopback.NginxConf(dir, "info", 64, fmt.Sprintf(`  server {
    listen %[2]s ssl;
    server_name localhost;
    ssl_certificate %[3]s;
    ssl_certificate_key %[4]s;
    ssl_protocols %[5]s;
    ssl_ecdh_curve prime256v1;
    ssl_session_cache off;
    ssl_session_tickets on;
%[6]s    location / { return 200 "ok\n"; }
  }
`, dir, addr, cert, key, proto, keys.String()))
}

func TestMixedFleetNginx(t *testing.T) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		nginx = "/usr/sbin/nginx"
	}
	for _, v := range sesstest.Versions(t) {
		for _, size := range []int{sslsession.TicketKeySize128, sslsession.TicketKeySize} {
			t.Run(fmt.Sprintf("%s/%d-byte", v, size), func(t *testing.T) {
				dir := t.TempDir()
				cert, key, _ := certFiles(t, dir)
				rot := newRotation(t, size)
				files := &keyfile.NginxFiles{Paths: []string{
					filepath.Join(dir, "ticket.0.key"), filepath.Join(dir, "ticket.1.key"), filepath.Join(dir, "ticket.2.key")}}
				changed, err := files.Publish(time.Now(), rot.before)
				require.NoError(t, err)
				require.True(t, changed)
				got, err := keyfile.ReadNginx(files.Paths...)
				require.NoError(t, err)
				require.Len(t, got, 3)
				assert.True(t, got[0].Equal(rot.k1), "the encrypting key first")
				assert.True(t, got[1].Equal(rot.k2), "then the published next key")
				assert.True(t, got[2].Equal(rot.k0), "then the older one")
				for _, p := range files.Paths {
					fi, err := os.Stat(p)
					require.NoError(t, err)
					assert.Equal(t, os.FileMode(0o600), fi.Mode().Perm())
					assert.Equal(t, int64(size), fi.Size())
				}

				addr := freePort(t)
				conf := filepath.Join(dir, "nginx.conf")
				require.NoError(t, os.Mkdir(filepath.Join(dir, "tmp"), 0o700))
				require.NoError(t, os.WriteFile(conf, []byte(nginxConf(dir, addr, cert, key, v, files.Paths)), 0o600))
				cmd := startProc(t, addr, nginx, "-e", filepath.Join(dir, "startup.log"), "-p", dir, "-c", conf)
				ng := peer{name: "nginx", addr: addr, http: true}
				sc, ours := ringServer(t, v, nginxSessionIDContext(t), rot.before)

				checkBothWays(t, v, ng, ours, rot.k1)
				old := newMixedClient(t, v)
				require.False(t, old.dial(t, ng))
				require.Equal(t, rot.k1.Name(), old.lastName(t))
				self := newMixedClient(t, v)
				require.False(t, self.dial(t, ng))

				// Rotate: k2 encrypts, k3 is published, k1 still decrypts.
				changed, err = files.Publish(time.Now(), rot.after)
				require.NoError(t, err)
				require.True(t, changed)
				changed, err = files.Publish(time.Now(), rot.after)
				require.NoError(t, err)
				require.False(t, changed, "the same ring again changes nothing")
				require.NoError(t, sc.SetTicketKeys(rot.after))
				require.NoError(t, reloadNginx(cmd.Process.Pid, filepath.Join(dir, "error.log")))
				probe, streak := newMixedClient(t, v), 0
				require.Eventually(t, func() bool {
					probe.dial(t, ng)
					if probe.lastName(t) != rot.k2.Name() {
						streak = 0
						return false
					}
					streak++
					return streak == 3 // the old worker has stopped accepting
				}, 10*time.Second, 20*time.Millisecond, "nginx's new worker encrypts under k2")

				// A ticket from before the rotation resumes on both (and is
				// renewed under k2 by each).
				assert.True(t, self.dial(t, ng), "a pre-rotation ticket resumes on the rotated nginx itself")
				assert.Equal(t, rot.k2.Name(), self.lastName(t), "renewed under k2")
				assert.Equal(t, resumes(ng, ours), old.dial(t, ours), "a pre-rotation nginx ticket on sslsession")
				assert.Equal(t, rot.k2.Name(), old.lastName(t), "renewed under the new key")
				pre := newMixedClient(t, v)
				// One issued by sslsession under k1 before the rotation: set
				// the old ring on a second server to get one now.
				_, oldOurs := ringServer(t, v, nginxSessionIDContext(t), rot.before)
				require.False(t, pre.dial(t, oldOurs))
				require.Equal(t, rot.k1.Name(), pre.lastName(t))
				assert.Equal(t, resumes(ours, ng), pre.dial(t, ng), "an sslsession k1 ticket on the rotated nginx")
				assert.Equal(t, rot.k2.Name(), pre.lastName(t), "nginx renews it under k2")
				checkBothWays(t, v, ng, ours, rot.k2)
			})
		}
	}
}

// haproxyConf is a minimal haproxy configuration answering 200. haproxy
// picks the cipher suite in its own order (AES-256-GCM-SHA384 first), the
// others in the client's (crypto/tls: AES-128-GCM-SHA256): a TLS 1.3 ticket
// resumes only under a suite of the same hash, so the fleet pins one.
func haproxyConf(addr, combined, keys, sock string, v sslsession.Version) string {
	proto := "TLSv1.2"
	if v == sslsession.TLS13 {
		proto = "TLSv1.3"
	}
	return fmt.Sprintf(`global
  stats socket %[4]s level admin
defaults
  mode http
  timeout connect 5s
  timeout client 5s
  timeout server 5s
frontend fe
  bind %[1]s ssl crt %[2]s tls-ticket-keys %[3]s ssl-min-ver %[5]s ssl-max-ver %[5]s curves P-256 ciphersuites TLS_AES_128_GCM_SHA256
  http-request return status 200 content-type text/plain string ok
`, addr, combined, keys, sock, proto)
}

// haproxyCommand runs one command on haproxy's stats socket.
func haproxyCommand(t testing.TB, sock, cmd string) string {
	t.Helper()
	c, err := net.DialTimeout("unix", sock, 5*time.Second)
	require.NoError(t, err)
	defer c.Close()
	require.NoError(t, c.SetDeadline(time.Now().Add(5*time.Second)))
	_, err = io.WriteString(c, cmd+"\n")
	require.NoError(t, err)
	out, err := io.ReadAll(bufio.NewReader(c))
	require.NoError(t, err)
	return string(out)
}

func TestMixedFleetHAProxy(t *testing.T) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		haproxy = "/usr/sbin/haproxy"
	}
	for _, v := range sesstest.Versions(t) {
		for _, size := range []int{sslsession.TicketKeySize128, sslsession.TicketKeySize} {
			t.Run(fmt.Sprintf("%s/%d-byte", v, size), func(t *testing.T) {
				dir := t.TempDir()
				_, _, combined := certFiles(t, dir)
				rot := newRotation(t, size)
				file := &keyfile.HAProxyFile{Path: filepath.Join(dir, "tickets.keys")}
				changed, err := file.Publish(time.Now(), rot.before)
				require.NoError(t, err)
				require.True(t, changed)
				got, err := keyfile.ReadHAProxy(file.Path)
				require.NoError(t, err)
				require.Len(t, got, 3)
				assert.True(t, got[keyfile.HAProxyEncrypting(got)].Equal(rot.k1), "the encrypting key before the last")
				assert.True(t, got[2].Equal(rot.k2), "the published next key last")

				addr, sock := freePort(t), filepath.Join(dir, "admin.sock")
				conf := filepath.Join(dir, "haproxy.cfg")
				require.NoError(t, os.WriteFile(conf, []byte(haproxyConf(addr, combined, file.Path, sock, v)), 0o600))
				startProc(t, addr, haproxy, "-db", "-f", conf)
				hp := peer{name: "haproxy", addr: addr, http: true}
				sc, ours := ringServer(t, v, haproxySessionIDContext, rot.before)

				checkBothWays(t, v, hp, ours, rot.k1)
				old := newMixedClient(t, v)
				require.False(t, old.dial(t, hp))
				require.Equal(t, rot.k1.Name(), old.lastName(t))
				self := newMixedClient(t, v)
				require.False(t, self.dial(t, hp))

				// Rotate through the runtime API: the new next key k3 becomes
				// the last, so k2 (before the last) encrypts; k1 decrypts.
				changed, err = file.Publish(time.Now(), rot.after)
				require.NoError(t, err)
				require.True(t, changed)
				after, err := keyfile.ReadHAProxy(file.Path)
				require.NoError(t, err)
				require.True(t, after[len(after)-1].Equal(rot.k3), "the file ends with the new next key")
				line, err := keyfile.HAProxyLine(rot.k3)
				require.NoError(t, err)
				out := haproxyCommand(t, sock, "set ssl tls-key "+file.Path+" "+line)
				require.Contains(t, out, "TLS ticket key updated", out)
				require.NoError(t, sc.SetTicketKeys(rot.after))

				probe := newMixedClient(t, v)
				require.False(t, probe.dial(t, hp))
				assert.Equal(t, rot.k2.Name(), probe.lastName(t), "haproxy encrypts under k2")
				assert.True(t, self.dial(t, hp), "a pre-rotation ticket resumes on the rotated haproxy itself")
				assert.Equal(t, rot.k2.Name(), self.lastName(t), "renewed under k2")
				assert.Equal(t, resumes(hp, ours), old.dial(t, ours), "a pre-rotation haproxy ticket on sslsession")
				_, oldOurs := ringServer(t, v, haproxySessionIDContext, rot.before)
				pre := newMixedClient(t, v)
				require.False(t, pre.dial(t, oldOurs))
				require.Equal(t, rot.k1.Name(), pre.lastName(t))
				assert.Equal(t, resumes(ours, hp), pre.dial(t, hp), "an sslsession k1 ticket on the rotated haproxy")
				checkBothWays(t, v, hp, ours, rot.k2)
			})
		}
	}
}
