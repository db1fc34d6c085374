package test

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
	"github.com/sslsession/sslsession/redisstore"
	"github.com/sslsession/sslsession/ticketring"
)

// fleetProc is one examples/fleet-server process.
type fleetProc struct {
	addr, metrics string
	log           *lockedBuffer // its stdout and stderr
}

// startFleet builds examples/fleet-server and starts n of them on redisAddr
// (or on the -redis flags in extra when it is empty) with one certificate
// and sealing key.
func startFleet(t *testing.T, redisAddr string, n int, extra ...string) []fleetProc {
	t.Helper()
	dir := t.TempDir()
	bin := fleetServerBinary(t)
	cert, key := filepath.Join(dir, "server.crt"), filepath.Join(dir, "server.key")
	require.NoError(t, os.WriteFile(cert, sesstest.Cert(t).CertPEM, 0o600))
	require.NoError(t, os.WriteFile(key, sesstest.Cert(t).KeyPEM, 0o600))
	seal := make([]byte, 32)
	_, _ = rand.Read(seal)
	var procs []fleetProc
	for i := 0; i < n; i++ {
		p := fleetProc{addr: fmt.Sprintf("127.0.0.1:%d", sesstest.FreePort(t)), metrics: fmt.Sprintf("127.0.0.1:%d", sesstest.FreePort(t))}
		args := []string{"-addr", p.addr, "-cert", cert, "-key", key, "-seal-key", hex.EncodeToString(seal), "-metrics", p.metrics}
		if redisAddr != "" {
			args = append(args, "-redis", redisAddr)
		}
		args = append(args, extra...)
		cmd := exec.Command(bin, args...)
		log := &lockedBuffer{}
		p.log = log
		cmd.Stdout, cmd.Stderr = log, log
		require.NoError(t, cmd.Start())
		name := string(rune('A' + i))
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("host %s log:\n%s", name, log.String())
			}
		})
		deadline := time.Now().Add(15 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", p.addr, 200*time.Millisecond)
			if err == nil {
				c.Close()
				break
			}
			require.True(t, time.Now().Before(deadline), "host %s did not start: %s", name, log.String())
			time.Sleep(20 * time.Millisecond)
		}
		procs = append(procs, p)
	}
	return procs
}

// goTLSClient is crypto/tls with its ClientSessionCache.
func goTLSClient(t testing.TB, v sslsession.Version) *tls.Config {
	pool := x509.NewCertPool()
	require.True(t, pool.AppendCertsFromPEM(sesstest.Cert(t).CertPEM))
	return &tls.Config{RootCAs: pool, ServerName: "localhost", ClientSessionCache: tls.NewLRUClientSessionCache(4),
		MinVersion: uint16(v), MaxVersion: uint16(v), CurvePreferences: []tls.CurveID{tls.CurveP256}}
}

// goDial connects, echoes (TLS 1.3 tickets are read on the way) and
// reports whether it resumed.
func goDial(cfg *tls.Config, addr string) (bool, error) {
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, cfg)
	if err != nil {
		return false, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		return false, err
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil {
		return false, err
	}
	return c.ConnectionState().DidResume, nil
}

const pythonClient = `
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(sys.argv[1])
v = ssl.TLSVersion.TLSv1_3 if sys.argv[2] == "1.3" else ssl.TLSVersion.TLSv1_2
ctx.minimum_version = ctx.maximum_version = v
sess, out = None, []
for addr in sys.argv[3:]:
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as s:
        with ctx.wrap_socket(s, server_hostname="localhost", session=sess) as t:
            t.sendall(b"ping")
            t.recv(4)
            out.append(str(t.session_reused))
            sess = t.session
print(" ".join(out))
`

// The fleet as the README runs it: three examples/fleet-server processes
// on one redis-server share their ticket keys; a ticket issued by A resumes
// on B and then C with crypto/tls, openssl s_client, Python's ssl and this
// package's Dial; /metrics shows the tickets.
func TestFleetServerTickets(t *testing.T) {
	redisSrv := sesstest.StartRedis(t)
	hosts := startFleet(t, redisSrv.Addr, 3)
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(caFile, sesstest.Cert(t).CertPEM, 0o600))
	chain := []string{hosts[0].addr, hosts[1].addr, hosts[2].addr}

	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			t.Run("crypto/tls", func(t *testing.T) {
				cfg := goTLSClient(t, v)
				for i, addr := range chain {
					resumed, err := goDial(cfg, addr)
					require.NoError(t, err)
					assert.Equal(t, i > 0, resumed, "host %d", i)
				}
			})
			t.Run("s_client", func(t *testing.T) {
				flag := "-tls1_2"
				if v == sslsession.TLS13 {
					flag = "-tls1_3"
				}
				sess := filepath.Join(t.TempDir(), "sess")
				for i, addr := range chain {
					args := []string{"s_client", "-connect", addr, flag, "-CAfile", caFile, "-sess_out", sess + strconv.Itoa(i)}
					if i > 0 {
						args = append(args, "-sess_in", sess+"0") // A's session
					}
					out := runToolDelayedInput(t, "Q\n", 500*time.Millisecond, args...)
					assert.Equal(t, i > 0, strings.Contains(out, "Reused, "), "host %d: %s", i, out)
				}
			})
			t.Run("python", func(t *testing.T) {
				ver := "1.2"
				if v == sslsession.TLS13 {
					ver = "1.3"
				}
				out, err := exec.Command("python3", append([]string{"-c", pythonClient, caFile, ver}, chain...)...).CombinedOutput()
				require.NoError(t, err, "%s", out)
				assert.Equal(t, "False True True", strings.TrimSpace(string(out)))
			})
			t.Run("Dial", func(t *testing.T) {
				cctx := clientCtx(t, v)
				cache, err := sslsession.NewClientCache(cctx, 8)
				require.NoError(t, err)
				defer cache.Close()
				for i, addr := range chain {
					c, err := sslsession.Dial("tcp", addr, &sslsession.DialConfig{Cache: cache, ServerName: "localhost", Timeout: 10 * time.Second})
					require.NoError(t, err)
					echo(t, c)
					assert.Equal(t, i > 0, c.SessionReused(), "host %d", i)
					if i == 0 {
						// The cache is keyed by server name and address:
						// offer A's session to B and C.
						s, err := c.AwaitSession(5 * time.Second)
						require.NoError(t, err)
						der, err := s.MarshalBinary()
						require.NoError(t, err)
						for _, next := range chain[1:] {
							// One copy each: OpenSSL clients use a TLS 1.3
							// ticket once.
							cp, err := sslsession.ParseDER(der)
							require.NoError(t, err)
							require.NoError(t, cache.Put(sslsession.ClientCacheKey("localhost", next), cp))
							cp.Close()
						}
						s.Close()
					}
					c.Close()
				}
			})
		})
	}

	resp, err := http.Get("http://" + hosts[1].metrics + "/metrics")
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^sslsession_tickets_decrypted_total\{key_age="0"\} (\d+)$`).FindSubmatch(body)
	require.NotNil(t, m, "%s", body)
	n, _ := strconv.Atoi(string(m[1]))
	assert.GreaterOrEqual(t, n, 4*len(sesstest.Versions(t)), "B decrypted A's tickets")
	for _, name := range []string{"sslsession_tickets_issued_total", "sslsession_ticket_ring_events_total{event=\"refreshes\"}",
		"sslsession_ticket_ring_local 0", "sslsession_ticket_ring_split 0", "sslsession_cache_accept_total", "sslsession_redisstore_calls_total{op=\"get\"}"} {
		assert.Contains(t, string(body), name)
	}
	// Only the fixed label words: no key material, no names, no IDs.
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "sslsession_") {
			assert.Regexp(t, `^sslsession_[a-z_]+(\{[a-z_]+="[a-z_0-9+]+"\})? -?[0-9.e+-]+$`, line)
		}
	}
}

// The same fleet on a Redis Cluster and behind Sentinel (fleet-server's
// -redis with several nodes, -redis-master): tickets made on A resume on B
// and C with crypto/tls, and sessions by ID (the client refuses tickets)
// resume across the hosts through the store.
func TestFleetServerRedisTopologies(t *testing.T) {
	cluster := sesstest.StartRedisCluster(t)
	sentinel := sesstest.StartRedisSentinel(t)
	for _, topo := range []struct {
		name string
		args []string
	}{
		{"cluster", []string{"-redis", strings.Join(cluster.Addrs(), ",")}},
		{"sentinel", []string{"-redis", strings.Join(sentinel.Addrs(), ","), "-redis-master", sentinel.Name}},
	} {
		t.Run(topo.name, func(t *testing.T) {
			hosts := startFleet(t, "", 3, topo.args...)
			chain := []string{hosts[0].addr, hosts[1].addr, hosts[2].addr}
			for _, v := range sesstest.Versions(t) {
				t.Run(v.String()+"/tickets", func(t *testing.T) {
					cfg := goTLSClient(t, v)
					for i, addr := range chain {
						resumed, err := goDial(cfg, addr)
						require.NoError(t, err)
						assert.Equal(t, i > 0, resumed, "host %d", i)
					}
				})
			}
			t.Run("TLSv1.2/session-id", func(t *testing.T) {
				cctx := clientCtx(t, sslsession.TLS12)
				cctx.SetOptions(openssl.NoTicket)
				c := sesstest.Dial(t, chain[0], cctx, nil)
				echo(t, c)
				sess, err := c.Session1()
				require.NoError(t, err)
				defer sess.Close()
				info, err := sess.Info()
				require.NoError(t, err)
				require.False(t, info.HasTicket, "the client refused tickets")
				for i, addr := range chain[1:] {
					// The server stores the session after the client is
					// done: retry until it is in Redis.
					assert.Eventually(t, func() bool {
						c, err := sslsession.Dial("tcp", addr, &sslsession.DialConfig{Ctx: cctx, Session: sess, ServerName: "localhost", Timeout: 10 * time.Second})
						if err != nil {
							return false
						}
						defer c.Close()
						return c.SessionReused()
					}, 5*time.Second, 20*time.Millisecond, "A's session resumes on host %d through the store", i+1)
				}
			})
		})
	}
}

func clientCtx(t testing.TB, v sslsession.Version) *openssl.Ctx {
	t.Helper()
	c, err := loopback.ClientCtx(sesstest.Cert(t), v, v)
	require.NoError(t, err)
	return c
}

// inFleet is an in-process fleet server: session store and ticket ring on
// one Redis, as examples/fleet-server.
type inFleet struct {
	sc   *sslsession.Ctx
	ring *ticketring.Ring
	srv  *loopback.Server
}

func newInFleet(t testing.TB, addr string, seal []byte, opts ticketring.Options) *inFleet {
	t.Helper()
	oc, err := loopback.ServerCtx(sesstest.Cert(t), loopback.Config{SessionIDContext: []byte("in-fleet")})
	require.NoError(t, err)
	sc, err := sslsession.NewCtx(oc)
	require.NoError(t, err)
	client := redis.NewClient(&redis.Options{Addr: addr, ContextTimeoutEnabled: true, MaxRetries: -1,
		DialTimeout: 100 * time.Millisecond, DialerRetries: 1})
	t.Cleanup(func() { client.Close() })
	store, err := redisstore.New(client, redisstore.Options{Prefix: "in-fleet:", Keys: [][]byte{seal}, Timeout: 50 * time.Millisecond})
	require.NoError(t, err)
	require.NoError(t, sc.SetStore(store, sslsession.StoreOptions{}))
	opts.Keys = [][]byte{seal}
	opts.Timeout = 100 * time.Millisecond
	ring, err := ticketring.New(client, opts)
	require.NoError(t, err)
	t.Cleanup(func() { ring.Close() })
	require.NoError(t, ring.Install(sc))
	require.NoError(t, ring.Sync(t.Context()))
	srv, err := loopback.Serve(oc, sesstest.Cert(t))
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	return &inFleet{sc: sc, ring: ring, srv: srv}
}

// Redis killed and restarted while 8 clients come back to the three hosts
// in turn: no handshake fails; the rates of resumption are logged for each
// phase.
func TestFleetTicketsRedisRestartUnderLoad(t *testing.T) {
	redisSrv := sesstest.StartRedis(t)
	seal := make([]byte, 32)
	_, _ = rand.Read(seal)
	opts := ticketring.Options{Prefix: "restart", Interval: 2 * time.Second, Lifetime: 10 * time.Second, Refresh: 100 * time.Millisecond}
	var hosts []*inFleet
	for i := 0; i < 3; i++ {
		hosts = append(hosts, newInFleet(t, redisSrv.Addr, seal, opts))
	}
	var phase atomic.Int32
	var dials, resumed, failed [3]atomic.Int64
	var firstErr atomic.Pointer[error]
	stop := make(chan struct{})
	var wg sync.WaitGroup
	vs := sesstest.Versions(t)
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := goTLSClient(t, vs[w%len(vs)])
			for i := w; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				p := phase.Load()
				ok, err := goDial(cfg, hosts[i%3].srv.Addr)
				dials[p].Add(1)
				if err != nil {
					failed[p].Add(1)
					firstErr.CompareAndSwap(nil, &err)
					continue
				}
				if ok {
					resumed[p].Add(1)
				}
			}
		}()
	}
	time.Sleep(time.Second)
	redisSrv.Stop()
	phase.Store(1)
	time.Sleep(1500 * time.Millisecond)
	redisSrv.Restart()
	phase.Store(2)
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()
	for p, name := range []string{"before", "during", "after"} {
		d, r := dials[p].Load(), resumed[p].Load()
		require.Positive(t, d, name)
		t.Logf("%s the outage: %d handshakes, %d resumed (%.1f%%), %d failed", name, d, r, 100*float64(r)/float64(d), failed[p].Load())
		assert.Zero(t, failed[p].Load(), "%s: no handshake fails", name)
	}
	if e := firstErr.Load(); e != nil {
		t.Logf("first error: %v", *e)
	}
	var st ticketring.Stats
	for _, h := range hosts {
		s := h.ring.Stats()
		st.RefreshErrors += s.RefreshErrors
		st.Fallbacks += s.Fallbacks
		st.Rejoins += s.Rejoins
		assert.False(t, s.Local, "rejoined")
		assert.Zero(t, h.sc.Metrics().Tickets.Errors)
	}
	assert.Positive(t, st.RefreshErrors)
	t.Logf("ring: %d refresh errors, %d fallbacks, %d rejoins", st.RefreshErrors, st.Fallbacks, st.Rejoins)
	// After the restart the hosts agree on one ring again. A rotation may
	// have just been published, which each host sees at its next refresh:
	// they agree within a few refresh periods.
	assert.Eventually(t, func() bool {
		n0, _ := hosts[0].ring.Names()
		for _, h := range hosts[1:] {
			if n, _ := h.ring.Names(); !reflect.DeepEqual(n0, n) {
				return false
			}
		}
		return true
	}, 20*opts.Refresh, opts.Refresh/4, "the hosts share one ring")
	r2 := float64(resumed[2].Load()) / float64(dials[2].Load())
	assert.Greater(t, r2, 0.5, "resumption is back after the restart")
}
