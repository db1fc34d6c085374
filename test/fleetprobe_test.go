package test

import (
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession/internal/sesstest"
)

// A load balancer's plain TCP health checks (connect, close) and other
// failed handshakes are counted in /metrics and logged as summary lines, at
// most one per -log-incomplete-every, not one line each.
func TestFleetServerProbesCountedNotLogged(t *testing.T) {
	redisSrv := sesstest.StartRedis(t)
	period := 400 * time.Millisecond
	host := startFleet(t, redisSrv.Addr, 1, "-log-incomplete-every", period.String())[0]
	start := time.Now()
	const probes = 50
	for i := 0; i < probes; i++ {
		c, err := net.Dial("tcp", host.addr)
		require.NoError(t, err)
		require.NoError(t, c.Close())
	}
	// And one that is not TLS at all.
	c, err := net.Dial("tcp", host.addr)
	require.NoError(t, err)
	_, _ = c.Write([]byte("GET / HTTP/1.0\r\n\r\n"))
	_, _ = io.Copy(io.Discard, c)
	c.Close()

	// startFleet's readiness check was a probe too.
	metric := func(reason string) int {
		resp, err := http.Get("http://" + host.metrics + "/metrics")
		require.NoError(t, err)
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		require.NoError(t, err)
		m := regexp.MustCompile(`fleet_server_handshakes_incomplete_total\{reason="` + reason + `"\} (\d+)`).FindSubmatch(body)
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	require.Eventually(t, func() bool { return metric("closed") == probes+1 && metric("failed") == 1 },
		10*time.Second, 20*time.Millisecond, "closed %d, failed %d", metric("closed"), metric("failed"))

	// Every count reaches the log within a period, in few lines.
	re := regexp.MustCompile(`handshakes not completed: (\d+) closed by the peer first \(plain TCP probes\?\)(?:, (\d+) failed \(latest ([^)]*)\))?`)
	var lines []string
	require.Eventually(t, func() bool {
		closed, failed := 0, 0
		lines = nil
		for _, l := range strings.Split(host.log.String(), "\n") {
			if m := re.FindStringSubmatch(l); m != nil {
				lines = append(lines, l)
				n, _ := strconv.Atoi(m[1])
				closed += n
				if m[2] != "" {
					f, _ := strconv.Atoi(m[2])
					failed += f
				}
			}
		}
		return closed == probes+1 && failed == 1
	}, 10*time.Second, 50*time.Millisecond, "log:\n%s", host.log.String())
	maxLines := int(time.Since(start)/period) + 2
	assert.LessOrEqual(t, len(lines), maxLines, "at most one line per period:\n%s", strings.Join(lines, "\n"))
	assert.Contains(t, strings.Join(lines, "\n"), "http request", "the latest failure is named")
	assert.NotContains(t, host.log.String(), "handshake: ", "no line per connection")
}
