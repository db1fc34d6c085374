package sesstest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Redis is one redis-server process.
type Redis struct {
	// Addr is host:port, 127.0.0.1 and the port chosen at Start; Restart
	// keeps it.
	Addr string

	tb     testing.TB
	bin    string
	dir    string
	extra  []string // more redis-server arguments
	conf   string   // a configuration file, first on the command line (Sentinel's)
	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	log    bytes.Buffer
}

// StartRedis starts a redis-server and stops it when the test ends. It fails the
// test if redis-server is not on PATH or does not answer PING.
func StartRedis(tb testing.TB) *Redis {
	tb.Helper()
	return startWith(tb)
}

func startWith(tb testing.TB, extra ...string) *Redis {
	tb.Helper()
	return startConf(tb, nil, extra...)
}

// startConf starts a server; conf, when not nil, writes its configuration
// file in the server's directory for the chosen address and returns its
// path.
func startConf(tb testing.TB, conf func(dir, addr string) (string, error), extra ...string) *Redis {
	tb.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		tb.Fatalf("redistest: redis-server not found on PATH: install redis-server (make test does; on Debian: apt-get install redis-server): %v", err)
	}
	s := &Redis{tb: tb, bin: bin, dir: tb.TempDir(), extra: extra}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			tb.Fatalf("redistest: no free port: %v", err)
		}
		s.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if conf != nil {
			if s.conf, err = conf(s.dir, s.Addr); err != nil {
				tb.Fatalf("redistest: configuration: %v", err)
			}
		}
		if lastErr = s.start(); lastErr == nil {
			tb.Cleanup(s.kill)
			return s
		}
	}
	tb.Fatalf("redistest: redis-server did not start: %v", lastErr)
	return nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

func (s *Redis) start() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	args := []string{
		"--port", port, "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no",
		"--dir", s.dir, "--daemonize", "no",
		"--protected-mode", "yes",
	}
	if s.conf != "" {
		args = append([]string{s.conf}, args...)
	}
	cmd := exec.Command(s.bin, append(args, s.extra...)...)
	s.mu.Lock()
	s.log.Reset()
	cmd.Stdout = &lockedWriter{mu: &s.mu, w: &s.log}
	cmd.Stderr = cmd.Stdout
	s.mu.Unlock()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.mu.Lock()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("redis-server exited: %s", s.output())
		default:
		}
		if err := s.Ping(); err == nil {
			// Another test's redis-server may hold the port (ours then
			// fails to bind and exits): only ours counts.
			if s.answersAs(cmd.Process.Pid) {
				return nil
			}
			s.kill()
			return fmt.Errorf("port %s answered by another redis-server", port)
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.kill()
	return fmt.Errorf("redis-server on %s did not answer PING: %s", s.Addr, s.output())
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (s *Redis) output() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.log.String()
}

// Ping sends PING over a new connection and checks for +PONG.
func (s *Redis) Ping() error {
	c, err := net.DialTimeout("tcp", s.Addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "+PONG\r\n" {
		return fmt.Errorf("redistest: PING answered %q", line)
	}
	return nil
}

// Stop kills the server (SIGKILL: as abrupt as a crash) and waits for it
// to exit. Its data is lost.
func (s *Redis) Stop() {
	s.tb.Helper()
	s.kill()
}

func (s *Redis) kill() {
	s.mu.Lock()
	cmd, exited := s.cmd, s.exited
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Kill()
	<-exited
}

// Restart starts the server again on the same port, after Stop.
func (s *Redis) Restart() {
	s.tb.Helper()
	s.kill()
	var err error
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond) // the port may linger
	}
	s.tb.Fatalf("redistest: restart on %s: %v", s.Addr, err)
}

// Pause stops the process (SIGSTOP): connections stay open but nothing is
// answered, as with a server stuck or a network black hole. Resume undoes
// it; at the test's end the process is killed either way.
func (s *Redis) Pause() {
	s.tb.Helper()
	s.signal(syscall.SIGSTOP)
}

// Resume continues a paused server (SIGCONT).
func (s *Redis) Resume() {
	s.tb.Helper()
	s.signal(syscall.SIGCONT)
}

func (s *Redis) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		s.tb.Fatalf("redistest: server on %s is not running", s.Addr)
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		s.tb.Fatalf("redistest: %v: %v", sig, err)
	}
}

// Do sends one command (RESP array of bulk strings) over a new connection
// and returns the raw reply's first line, the bulk string for a bulk
// reply, or an array of bulk strings one per line. It is enough for tests to look at what a store wrote: GET, TTL,
// SET, KEYS.
func (s *Redis) Do(ctx context.Context, args ...string) (string, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	} else {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(b.Bytes()); err != nil {
		return "", err
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = line[:len(line)-2]
	switch {
	case line == "":
		return "", errors.New("redistest: empty reply")
	case line[0] == '-':
		return "", errors.New("redistest: " + line[1:])
	case line[0] == '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", err
		}
		if n < 0 {
			return "", ErrRedisNil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case line[0] == '+' || line[0] == ':':
		return line[1:], nil
	case line[0] == '*':
		// An array (SENTINEL's answers): its elements, nested arrays
		// flattened, one per line.
		out, err := readArray(r, line)
		return strings.Join(out, "\n"), err
	}
	return line, nil
}

// readArray reads the elements of the array whose header is line, nested
// arrays flattened.
func readArray(r *bufio.Reader, line string) ([]string, error) {
	n, err := strconv.Atoi(line[1:])
	if err != nil {
		return nil, err
	}
	var out []string
	for i := 0; i < n; i++ {
		head, err := r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		head = strings.TrimSuffix(head, "\r\n")
		switch {
		case strings.HasPrefix(head, "*"):
			sub, err := readArray(r, head)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
		case strings.HasPrefix(head, "$"):
			m, err := strconv.Atoi(head[1:])
			if err != nil {
				return nil, err
			}
			if m < 0 {
				out = append(out, "")
				continue
			}
			buf := make([]byte, m+2)
			if _, err := io.ReadFull(r, buf); err != nil {
				return nil, err
			}
			out = append(out, string(buf[:m]))
		case head != "":
			out = append(out, head[1:]) // +simple, :integer
		}
	}
	return out, nil
}

// ErrRedisNil is Do's error for a nil reply (GET of a missing key).
var ErrRedisNil = errors.New("sesstest: nil reply from Redis")

// RedisCluster is a Redis Cluster of three masters (no replicas) on 127.0.0.1,
// each owning a third of the hash slots.
type RedisCluster struct {
	Nodes []*Redis
}

// StartRedisCluster starts a three-node cluster and waits until every node
// reports cluster_state:ok. The nodes are killed when the test ends.
func StartRedisCluster(tb testing.TB) *RedisCluster {
	tb.Helper()
	c := &RedisCluster{}
	for i := 0; i < 3; i++ {
		c.Nodes = append(c.Nodes, startWith(tb, "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const slots = 16384
	for i, n := range c.Nodes {
		lo, hi := i*slots/3, (i+1)*slots/3-1
		if _, err := n.Do(ctx, "CLUSTER", "ADDSLOTSRANGE", strconv.Itoa(lo), strconv.Itoa(hi)); err != nil {
			tb.Fatalf("redistest: CLUSTER ADDSLOTSRANGE on %s: %v", n.Addr, err)
		}
	}
	for _, n := range c.Nodes[1:] {
		host, port, _ := net.SplitHostPort(n.Addr)
		if _, err := c.Nodes[0].Do(ctx, "CLUSTER", "MEET", host, port); err != nil {
			tb.Fatalf("redistest: CLUSTER MEET %s: %v", n.Addr, err)
		}
	}
	for _, n := range c.Nodes {
		for {
			info, err := n.Do(ctx, "CLUSTER", "INFO")
			if err == nil && bytes.Contains([]byte(info), []byte("cluster_state:ok")) &&
				bytes.Contains([]byte(info), []byte("cluster_known_nodes:3")) {
				break
			}
			if ctx.Err() != nil {
				tb.Fatalf("redistest: cluster not ready on %s: %q %v", n.Addr, info, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// Addrs are the nodes' addresses, for go-redis's ClusterOptions.Addrs.
func (c *RedisCluster) Addrs() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Addr)
	}
	return out
}

// answersAs reports whether the redis-server answering on s.Addr is the
// process pid (INFO server's process_id).
func (s *Redis) answersAs(pid int) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	info, err := s.Do(ctx, "INFO", "server")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			return v == strconv.Itoa(pid)
		}
	}
	return false
}

// RedisSentinel is a master, one replica and a Redis Sentinel watching them
// (quorum 1), on 127.0.0.1: go-redis's FailoverClient (UniversalOptions
// with MasterName) finds the master through it.
type RedisSentinel struct {
	Name     string // the master's name, for MasterName
	Master   *Redis
	Replica  *Redis
	Sentinel *Redis
}

// StartRedisSentinel starts the master, its replica and the sentinel, and waits
// until the replica is in sync and the sentinel names the master. A master down for
// a second is failed over to the replica.
func StartRedisSentinel(tb testing.TB) *RedisSentinel {
	tb.Helper()
	// Redis waits 5 s for more replicas before a diskless sync by default.
	st := &RedisSentinel{Name: "fleet", Master: startWith(tb, "--repl-diskless-sync-delay", "0")}
	mhost, mport, _ := net.SplitHostPort(st.Master.Addr)
	st.Replica = startWith(tb, "--replicaof", mhost, mport)
	st.Sentinel = startConf(tb, func(dir, _ string) (string, error) {
		p := filepath.Join(dir, "sentinel.conf")
		conf := fmt.Sprintf("sentinel monitor %s %s %s 1\n"+
			"sentinel down-after-milliseconds %s 1000\n"+
			"sentinel failover-timeout %s 10000\n", st.Name, mhost, mport, st.Name, st.Name)
		return p, os.WriteFile(p, []byte(conf), 0o600)
	}, "--sentinel")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st.wait(ctx, "the replica in sync and named by the sentinel", func() (bool, string) {
		info, err := st.Replica.Do(ctx, "INFO", "replication")
		if err != nil || !strings.Contains(info, "master_link_status:up") {
			return false, fmt.Sprintf("replica: %q %v", info, err)
		}
		addr, err := st.MasterAddr(ctx)
		return err == nil && addr == st.Master.Addr, fmt.Sprintf("sentinel: %q %v", addr, err)
	})
	return st
}

// wait polls ok until it holds, failing the test after ctx ends with what
// ok last said.
func (st *RedisSentinel) wait(ctx context.Context, what string, ok func() (bool, string)) {
	tb := st.Master.tb
	tb.Helper()
	for {
		done, last := ok()
		if done {
			return
		}
		if ctx.Err() != nil {
			tb.Fatalf("redistest: waiting for %s: %s", what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Addrs are the sentinels' addresses, for UniversalOptions.Addrs.
func (st *RedisSentinel) Addrs() []string { return []string{st.Sentinel.Addr} }

// MasterAddr is the master's address as the sentinel names it now.
func (st *RedisSentinel) MasterAddr(ctx context.Context) (string, error) {
	r, err := st.Sentinel.Do(ctx, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", st.Name)
	if err != nil {
		return "", err
	}
	hp := strings.Split(r, "\n")
	if len(hp) != 2 {
		return "", fmt.Errorf("redistest: sentinel answered %q", r)
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// Failover waits until the replica holds what the master wrote, kills the
// master and waits until the sentinel has promoted the replica.
func (st *RedisSentinel) Failover() {
	tb := st.Master.tb
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if n, err := st.Master.Do(ctx, "WAIT", "1", "5000"); err != nil || n != "1" {
		tb.Fatalf("redistest: WAIT for the replica: %q %v", n, err)
	}
	// The sentinel learns of replicas from the master's INFO, which it
	// reads every ten seconds: it can promote only one it knows.
	_, port, _ := net.SplitHostPort(st.Replica.Addr)
	st.wait(ctx, "the sentinel to know the replica", func() (bool, string) {
		known, err := st.Sentinel.Do(ctx, "SENTINEL", "REPLICAS", st.Name)
		return err == nil && slices.Contains(strings.Split(known, "\n"), port), fmt.Sprintf("%q %v", known, err)
	})
	st.Master.Stop()
	st.wait(ctx, "the failover to "+st.Replica.Addr, func() (bool, string) {
		addr, err := st.MasterAddr(ctx)
		if err != nil || addr != st.Replica.Addr {
			return false, fmt.Sprintf("sentinel names %q %v", addr, err)
		}
		info, err := st.Replica.Do(ctx, "INFO", "replication")
		return err == nil && strings.Contains(info, "role:master"), fmt.Sprintf("replica: %q %v", info, err)
	})
}
