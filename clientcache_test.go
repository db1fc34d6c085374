package sslsession_test

import (
	"io"
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/spacemonkeygo/openssl"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/loopback"
	"github.com/sslsession/sslsession/internal/sesstest"
)

// cacheEcho writes and reads back one message, which (TLS 1.3) also reads
// the server's session tickets.
func cacheEcho(t testing.TB, c *sslsession.Conn) {
	t.Helper()
	_, err := c.Write([]byte("hello"))
	require.NoError(t, err)
	buf := make([]byte, 5)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, "hello", string(buf))
}

// cacheTicketServer is a server with OpenSSL's defaults: stateless tickets.
func cacheTicketServer(t testing.TB, v sslsession.Version) *loopback.Server {
	t.Helper()
	oc, err := loopback.ServerCtx(sesstest.Cert(t), loopback.Config{Min: v, Max: v})
	require.NoError(t, err)
	return sesstest.Serve(t, oc)
}

func TestClientCacheDialResumes(t *testing.T) {
	sesstest.LeakCheck(t)
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			srv := cacheTicketServer(t, v)
			cctx := sesstest.ClientCtx(t, v)
			cc, err := sslsession.NewClientCache(cctx, 0)
			require.NoError(t, err)
			defer cc.Close()
			require.Same(t, cctx, cc.Ctx())
			cfg := &sslsession.DialConfig{Cache: cc, ServerName: "localhost"}
			key := sslsession.ClientCacheKey("localhost", srv.Addr)

			c, err := sslsession.Dial("tcp", srv.Addr, cfg)
			require.NoError(t, err)
			require.False(t, c.SessionReused())
			if v == sslsession.TLS12 {
				require.Equal(t, 1, cc.Len(), "TLS 1.2: stored by Dial")
			} else {
				require.Zero(t, cc.Len(), "TLS 1.3: nothing before the tickets are read")
			}
			cacheEcho(t, c)
			require.NoError(t, c.Close())
			require.Equal(t, 1, cc.Len())

			for i := 0; i < 3; i++ {
				c, err = sslsession.Dial("tcp", srv.Addr, cfg)
				require.NoError(t, err)
				require.True(t, c.SessionReused(), "round %d", i)
				if v == sslsession.TLS13 {
					require.Zero(t, cc.Len(), "a TLS 1.3 ticket is used once")
					require.Nil(t, cc.Get(key))
				} else {
					require.Equal(t, 1, cc.Len())
				}
				cacheEcho(t, c)
				require.NoError(t, c.Close())
				require.Equal(t, 1, cc.Len())
			}
			st := cc.Stats()
			t.Logf("%+v", st)
			require.Equal(t, int64(3), st.Hits)
			require.GreaterOrEqual(t, st.Misses, int64(1))
			if v == sslsession.TLS13 {
				// Every ticket is stored as it arrives: OpenSSL's server
				// sends two after a full handshake, one after a resumption.
				require.Equal(t, int64(2+3), st.Puts)
			}

			// The held session is a real SSL_SESSION of the cache's context.
			s := cc.Get(key)
			require.NotNil(t, s)
			info, err := s.Info()
			require.NoError(t, err)
			require.Equal(t, v, info.Protocol)
			require.True(t, info.Resumable)
			s.Close()
		})
	}
}

// The cache key is (server name, address): another name is another entry.
func TestClientCacheKeys(t *testing.T) {
	sesstest.LeakCheck(t)
	v := sslsession.TLS12
	srv := cacheTicketServer(t, v)
	cc, err := sslsession.NewClientCache(sesstest.ClientCtx(t, v), 0)
	require.NoError(t, err)
	defer cc.Close()
	for _, name := range []string{"localhost", "127.0.0.1"} {
		c, err := sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Cache: cc, ServerName: name})
		require.NoError(t, err)
		require.False(t, c.SessionReused(), name)
		c.Close()
	}
	require.Equal(t, 2, cc.Len())
	// No ServerName: the host part of the address, here 127.0.0.1.
	c, err := sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Cache: cc})
	require.NoError(t, err)
	require.True(t, c.SessionReused())
	c.Close()
	require.NotNil(t, cc.Get(sslsession.ClientCacheKey("127.0.0.1", srv.Addr)))
}

func TestClientCacheOnePerContext(t *testing.T) {
	sesstest.LeakCheck(t)
	cctx := sesstest.ClientCtx(t, sslsession.TLS12)
	cc, err := sslsession.NewClientCache(cctx, 4)
	require.NoError(t, err)
	_, err = sslsession.NewClientCache(cctx, 4)
	require.ErrorIs(t, err, sslsession.ErrCacheInUse)
	sc, err := sslsession.NewCtx(cctx)
	require.NoError(t, err)
	require.Equal(t, sslsession.CacheClient|sslsession.CacheNoInternalStore, sc.CacheMode()&^sslsession.CacheServer,
		"client caching on, without OpenSSL's internal store")
	newCb, _, _ := sslsession.CacheCallbacks(sc)
	require.True(t, newCb)
	require.NoError(t, cc.Close())
	require.NoError(t, cc.Close(), "a second Close does nothing")
	newCb, _, _ = sslsession.CacheCallbacks(sc)
	require.False(t, newCb, "Close takes the callback off")
	cc2, err := sslsession.NewClientCache(cctx, 4)
	require.NoError(t, err, "after Close the context takes a new cache")
	require.NoError(t, cc2.Close())
	_, err = sslsession.NewClientCache(nil, 1)
	require.ErrorIs(t, err, sslsession.ErrNilCtx)
}

// Sessions belong to one client SSL_CTX: the cache refuses others.
func TestClientCacheWrongContext(t *testing.T) {
	sesstest.LeakCheck(t)
	v := sslsession.TLS12
	srv := cacheTicketServer(t, v)
	cctx, otherCtx := sesstest.ClientCtx(t, v), sesstest.ClientCtx(t, v)
	cc, err := sslsession.NewClientCache(cctx, 0)
	require.NoError(t, err)
	defer cc.Close()

	_, err = sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Cache: cc, Ctx: otherCtx, ServerName: "localhost"})
	require.ErrorIs(t, err, sslsession.ErrWrongContext)

	// A session of another context.
	c, err := sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Ctx: otherCtx, ServerName: "localhost"})
	require.NoError(t, err)
	foreign, err := c.Session1()
	require.NoError(t, err)
	c.Close()
	defer foreign.Close()
	require.ErrorIs(t, cc.Put("k", foreign), sslsession.ErrWrongContext)
	require.Zero(t, cc.Len())

	// Decoded from DER it belongs to no context yet: accepted, and it
	// resumes through the cache.
	der, err := foreign.MarshalBinary()
	require.NoError(t, err)
	decoded, err := sslsession.ParseDER(der)
	require.NoError(t, err)
	defer decoded.Close()
	key := sslsession.ClientCacheKey("localhost", srv.Addr)
	require.NoError(t, cc.Put(key, decoded))
	c, err = sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Cache: cc, ServerName: "localhost"})
	require.NoError(t, err)
	require.True(t, c.SessionReused())
	c.Close()

	// A closed session is refused.
	closed, err := sslsession.ParseDER(der)
	require.NoError(t, err)
	closed.Close()
	require.ErrorIs(t, cc.Put(key, closed), sslsession.ErrClosed)
}

func TestClientCacheLRU(t *testing.T) {
	sesstest.LeakCheck(t)
	v := sslsession.TLS12
	var addrs []string
	for i := 0; i < 3; i++ {
		addrs = append(addrs, cacheTicketServer(t, v).Addr)
	}
	cc, err := sslsession.NewClientCache(sesstest.ClientCtx(t, v), 2)
	require.NoError(t, err)
	defer cc.Close()
	dial := func(addr string) bool {
		c, err := sslsession.Dial("tcp", addr, &sslsession.DialConfig{Cache: cc, ServerName: "localhost"})
		require.NoError(t, err)
		defer c.Close()
		return c.SessionReused()
	}
	require.False(t, dial(addrs[0]))
	require.False(t, dial(addrs[1]))
	require.True(t, dial(addrs[0])) // addrs[1] is now the least recently used
	require.False(t, dial(addrs[2]))
	require.Equal(t, 2, cc.Len())
	require.Nil(t, cc.Get(sslsession.ClientCacheKey("localhost", addrs[1])), "evicted")
	require.True(t, dial(addrs[0]))
	require.True(t, dial(addrs[2]))
}

// A failed dial that offered a cached session drops it; Remove and Close
// give sessions back.
func TestClientCacheDropsAndClose(t *testing.T) {
	sesstest.LeakCheck(t)
	v := sslsession.TLS12
	srv := cacheTicketServer(t, v)
	cc, err := sslsession.NewClientCache(sesstest.ClientCtx(t, v), 0)
	require.NoError(t, err)
	c, err := sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Cache: cc, ServerName: "localhost"})
	require.NoError(t, err)
	c.Close()
	require.Equal(t, 1, cc.Len())
	addr := srv.Addr
	require.NoError(t, srv.Close())
	// A listener that accepts and hangs up: the handshake fails.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			conn.Close()
		}
	}()
	key := sslsession.ClientCacheKey("localhost", addr)
	s := cc.Get(key)
	require.NotNil(t, s)
	badKey := sslsession.ClientCacheKey("localhost", ln.Addr().String())
	require.NoError(t, cc.Put(badKey, s))
	s.Close()
	_, err = sslsession.Dial("tcp", ln.Addr().String(), &sslsession.DialConfig{Cache: cc, ServerName: "localhost", Timeout: 5 * time.Second})
	require.Error(t, err)
	require.Nil(t, cc.Get(badKey), "the session offered to a failed handshake is dropped")
	require.Equal(t, 1, cc.Len())

	cc.Remove(key)
	require.Zero(t, cc.Len())
	require.NoError(t, cc.Put(key, cacheForeignSession(t, v)))
	require.Equal(t, 1, cc.Len())
	require.NoError(t, cc.Close())
	require.Zero(t, cc.Len())
	require.Nil(t, cc.Get(key))
	require.NoError(t, cc.Put(key, cacheForeignSession(t, v)), "Put after Close is accepted and dropped")
	require.Zero(t, cc.Len())
}

// Many goroutines share one cache (under -race).
func TestClientCacheConcurrent(t *testing.T) {
	sesstest.LeakCheck(t)
	for _, v := range sesstest.Versions(t) {
		t.Run(v.String(), func(t *testing.T) {
			srvs := []*loopback.Server{cacheTicketServer(t, v), cacheTicketServer(t, v)}
			cc, err := sslsession.NewClientCache(sesstest.ClientCtx(t, v), 2)
			require.NoError(t, err)
			defer cc.Close()
			var wg sync.WaitGroup
			errc := make(chan error, 8)
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func(g int) {
					defer wg.Done()
					for i := 0; i < 20; i++ {
						c, err := sslsession.Dial("tcp", srvs[(g+i)%2].Addr, &sslsession.DialConfig{Cache: cc, ServerName: "localhost"})
						if err != nil {
							errc <- err
							return
						}
						_, _ = c.Write([]byte("x"))
						_, _ = io.ReadFull(c, make([]byte, 1))
						c.Close()
					}
				}(g)
			}
			wg.Wait()
			close(errc)
			for err := range errc {
				require.NoError(t, err)
			}
			st := cc.Stats()
			t.Logf("%+v", st)
			require.Equal(t, int64(8*20), st.Hits+st.Misses, "every Dial looked its key up")
			require.GreaterOrEqual(t, st.Puts, int64(8*20), "every connection left a session")
			if v == sslsession.TLS12 {
				// TLS 1.3 tickets are single-use: the goroutines race for
				// them and a miss is possible every time.
				require.Positive(t, st.Hits)
			}
			require.LessOrEqual(t, st.Len, 2)
		})
	}
}

// The cache does not keep its context alive, and a dropped cache gives its
// sessions back.
func TestClientCacheGarbage(t *testing.T) {
	sesstest.LeakCheck(t)
	v := sslsession.TLS12
	srv := cacheTicketServer(t, v)
	func() {
		cc, err := sslsession.NewClientCache(sesstest.ClientCtx(t, v), 0)
		require.NoError(t, err)
		c, err := sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Cache: cc, ServerName: "localhost"})
		require.NoError(t, err)
		c.Close()
		require.Equal(t, 1, cc.Len())
	}()
	// cacheLeakCheck proves the session is given back.
	var keep *openssl.Ctx
	func() {
		keep = sesstest.ClientCtx(t, v)
		cc, err := sslsession.NewClientCache(keep, 0)
		require.NoError(t, err)
		c, err := sslsession.Dial("tcp", srv.Addr, &sslsession.DialConfig{Cache: cc, ServerName: "localhost"})
		require.NoError(t, err)
		c.Close()
	}()
	// The context lives on, its dropped cache is closed by the finalizer,
	// and the context then takes a new one.
	require.Eventually(t, func() bool {
		runtime.GC()
		cc, err := sslsession.NewClientCache(keep, 0)
		if err != nil {
			return false
		}
		cc.Close()
		return true
	}, 10*time.Second, 20*time.Millisecond)
}
