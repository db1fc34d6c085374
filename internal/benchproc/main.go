// Command benchproc is make bench-server and make bench-client: TLS
// handshakes the way deployments run them, each party in its own process.
//
// -side server measures servers under load from outside: this library's
// server (Server on each accepted connection, as examples/fleet-server
// does), a C server on the same OpenSSL (csrc/benchc.c), nginx with one
// worker, crypto/tls, and two floors of any Go server on OpenSSL (Go's
// net and the C server's code through cgo, without this library: floor.go),
// each in turn under the same fixed load, the C client. -side client
// measures clients dialing one fixed server, the C server: this library's
// Dial with a held session, the C client, crypto/tls, and the two client
// floors (Go's net and the C client's code through cgo, floor.go). The
// measured process is pinned to CPU 0 and its peer to CPU 1 when the
// machine has two; the figures are the measured process's own CPU time
// (its threads' run time from /proc/PID/task/*/schedstat, or user + system
// time from /proc/PID/stat if a thread ended) per handshake, and
// handshakes per second. Modes: full, resumed by session ID and resumed by
// ticket on TLS 1.2; full and resumed by ticket on TLS 1.3. Rounds are
// interleaved between implementations and the medians printed with their
// ratio to the C program's; every handshake's suite, group and resumption
// are checked by the C peer (and, client side, by the clients that tally
// them: the C client and the floors). Then one more round of each under
// strace -c counts system calls per connection. Server side, last, the
// idle part (idle.go): each server's CPU, threads and memory while it
// holds -idle open connections that do nothing.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/internal/cfloor"
	"github.com/sslsession/sslsession/internal/loopback"
)

// options are the command's flags.
type options struct {
	side    string        // "server" or "client"
	rounds  int           // interleaved rounds
	per     time.Duration // length of one round of one implementation
	strace  int           // connections in the strace round; 0: none
	only    string        // regular expression on implementation names
	modeRun string        // regular expression on row labels
	idle    int           // server side: idle connections held open; 0: no idle part
	idleFor time.Duration // how long the idle servers' CPU is measured
}

func main() {
	log.SetFlags(0)
	if ok, err := runRole(); ok {
		if err != nil {
			log.Fatal(err)
		}
		return
	}
	var o options
	flag.StringVar(&o.side, "side", "server", "what is measured: server or client")
	flag.IntVar(&o.rounds, "rounds", 5, "interleaved rounds")
	flag.DurationVar(&o.per, "time", time.Second, "length of one implementation's round")
	flag.IntVar(&o.strace, "strace", 200, "connections counted under strace -c (0: no count)")
	flag.StringVar(&o.only, "only", "", "measure only the implementations whose name matches this regular expression (and C)")
	flag.StringVar(&o.modeRun, "run", "", "run only the modes whose label matches this regular expression (e.g. 'TLS 1.2')")
	flag.IntVar(&o.idle, "idle", 1000, "server side: open TLS connections held idle while each server's CPU is measured (0: no idle part)")
	flag.DurationVar(&o.idleFor, "idle-time", 5*time.Second, "server side: how long the idle servers' CPU is measured")
	flag.Parse()
	if err := bench(os.Stdout, o); err != nil {
		log.Fatal(err)
	}
}

// mode is one row: a protocol version and a way to resume.
type mode struct {
	version string // "12" or "13"
	how     string // "full", "id" or "ticket"
}

func (m mode) label() string {
	v := "TLS 1.2"
	if m.version == "13" {
		v = "TLS 1.3"
	}
	switch m.how {
	case "id":
		return v + " resumed by session ID"
	case "ticket":
		return v + " resumed by ticket"
	}
	return v + " full"
}

// expect is what the C peer must have seen on each handshake of m.
func (m mode) expect() (suite, group string) {
	suite, group = cfloor.TLS12Cipher, "X25519"
	if m.version == "13" {
		suite = cfloor.TLS13Suite
	}
	if !hasX25519() {
		group = "P-256"
	}
	if m.version == "12" && m.how != "full" {
		group = "none" // a resumed TLS 1.2 handshake has no key exchange
	}
	return suite, group
}

// impl is one implementation under test, for one protocol version.
type impl struct {
	name string
	p    *proc // the measured process
	port int   // a server's port
	skip map[string]string
}

// figures are one implementation's results in one row.
type figures struct {
	cpu, rate []float64      // µs of CPU per handshake, handshakes/s, per round
	calls     map[string]int // system calls in the strace round
	traced    int            // connections in the strace round
	threads   int            // the measured process's threads at the end
}

const cName = "C"

func bench(w io.Writer, o options) error {
	if o.side != "server" && o.side != "client" {
		return fmt.Errorf("-side %q: server or client", o.side)
	}
	var only, rowRun *regexp.Regexp
	var err error
	if only, err = regexp.Compile(o.only); err != nil {
		return err
	}
	if rowRun, err = regexp.Compile(o.modeRun); err != nil {
		return err
	}
	if o.side == "server" && o.idle > 0 {
		if err := checkIdleOptions(o); err != nil {
			return err
		}
	}
	if err := sslsession.CheckSetup(); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "benchproc")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	certFile, keyFile, err := writeCert(dir)
	if err != nil {
		return err
	}
	benchc, err := buildC(dir)
	if err != nil {
		return err
	}
	out, err := exec.Command(benchc, "version").Output()
	if err != nil {
		return fmt.Errorf("the C programs: %w", err)
	}
	if got, want := strings.TrimSpace(string(out)), sslsession.RuntimeVersionText(); got != want {
		return fmt.Errorf("the C programs run %q, the library %q: not the same OpenSSL", got, want)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	measured, peer := -1, -1
	if runtime.NumCPU() >= 2 {
		measured, peer = 0, 1
	}
	var nginx *nginxInfo
	if o.side == "server" {
		if nginx, err = findNginx(); err != nil {
			return err
		}
	}

	versions := []string{"12"}
	if sslsession.MaxSupportedVersion() >= sslsession.TLS13 {
		versions = append(versions, "13")
	}
	var names []string
	rows := map[mode]map[string]*figures{}
	var order []mode
	for _, v := range versions {
		var impls []*impl
		var fixed *proc // the C peer
		var fixedPort int
		stopAll := func() {
			for _, im := range impls {
				im.p.stop()
			}
			if fixed != nil {
				fixed.stop()
			}
		}
		role := func(r string) []string { return roleSpec(r, v, certFile, keyFile) }
		startImpl := func(name string, launch func() (*proc, int, error)) error {
			if name != cName && !only.MatchString(name) {
				return nil // the C program is the reference: always there
			}
			p, port, err := launch()
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			impls = append(impls, &impl{name: name, p: p, port: port, skip: map[string]string{}})
			return nil
		}
		serverProc := func(name string, cpu int, env []string, args ...string) func() (*proc, int, error) {
			return func() (*proc, int, error) { return startServer(name, cpu, env, args...) }
		}
		clientProc := func(name string, env []string, args ...string) func() (*proc, int, error) {
			return func() (*proc, int, error) {
				p, err := start(name, measured, env, args...)
				if err != nil {
					return nil, 0, err
				}
				if _, err := p.line(10 * time.Second); err != nil {
					p.stop()
					return nil, 0, err
				}
				return p, 0, nil
			}
		}
		var errStart error
		if o.side == "server" {
			for _, s := range []struct {
				name   string
				launch func() (*proc, int, error)
			}{
				{cName, serverProc("C server", measured, nil, benchc, "server", v, certFile, keyFile)},
				{"sslsession", serverProc("sslsession server", measured, role("sslsession-server"), self)},
				{"crypto/tls", serverProc("crypto/tls server", measured, role("tls-server"), self)},
				{"nginx", func() (*proc, int, error) { return nginx.start(dir, v, certFile, keyFile, measured, 1024) }},
				{"Go+C", serverProc("Go+C server", measured, role("floor-server"), self)},
				{"Go+C blocking", serverProc("Go+C blocking server", measured, role("floor-blocking-server"), self)},
			} {
				if errStart = startImpl(s.name, s.launch); errStart != nil {
					break
				}
			}
			if errStart == nil {
				fixed, errStart = start("C client (load)", peer, nil, benchc, "client", v, certFile)
				if errStart == nil {
					_, errStart = fixed.line(10 * time.Second)
				}
			}
		} else {
			fixed, errStart = start("C server (fixed)", peer, nil, benchc, "server", v, certFile, keyFile)
			if errStart == nil {
				fixedPort, errStart = fixed.serverPort()
			}
			for _, s := range []struct {
				name   string
				launch func() (*proc, int, error)
			}{
				{cName, clientProc("C client", nil, benchc, "client", v, certFile)},
				{"sslsession", clientProc("sslsession client", role("sslsession-client"), self)},
				{"crypto/tls", clientProc("crypto/tls client", role("tls-client"), self)},
				{"Go+C", clientProc("Go+C client", role("floor-client"), self)},
				{"Go+C blocking", clientProc("Go+C blocking client", role("floor-blocking-client"), self)},
			} {
				if errStart != nil {
					break
				}
				errStart = startImpl(s.name, s.launch)
			}
		}
		if errStart != nil {
			stopAll()
			return errStart
		}
		if len(names) == 0 {
			for _, im := range impls {
				names = append(names, im.name)
			}
		}
		var modes []mode
		for _, how := range []string{"full", "id", "ticket"} {
			m := mode{v, how}
			if (v == "13" && how == "id") || !rowRun.MatchString(m.label()) {
				continue
			}
			modes = append(modes, m)
			order = append(order, m)
			rows[m] = map[string]*figures{}
			for _, im := range impls {
				rows[m][im.name] = &figures{}
			}
		}
		for _, im := range impls {
			if im.name == "crypto/tls" {
				im.skip["id"] = "crypto/tls has no session ID resumption"
			}
		}
		// one runs a round of im in m: count connections, or as many as
		// fit in o.per when count is 0.
		one := func(im *impl, m mode, count int, traceTo string) (result, time.Duration, map[string]int, error) {
			client, server, port := fixed, im.p, im.port
			if o.side == "client" {
				client, server, port = im.p, fixed, fixedPort
			}
			if _, err := client.ask(fmt.Sprintf("seed %d %s", port, m.how), 30*time.Second); err != nil {
				return result{}, 0, nil, err
			}
			if o.side == "client" {
				if _, err := server.ask("stats", 10*time.Second); err != nil { // from zero
					return result{}, 0, nil, err
				}
			}
			var tr *tracer
			if traceTo != "" {
				if tr, err = attach(im.p.pid, traceTo); err != nil {
					return result{}, 0, nil, err
				}
			}
			c0, err := snapCPU(im.p.pid)
			if err != nil {
				return result{}, 0, nil, err
			}
			limit := o.per
			if count > 0 {
				limit = time.Minute // a counted round runs to its count
			}
			l, err := client.ask(fmt.Sprintf("run %d %g", count, limit.Seconds()), limit+2*time.Minute)
			c1, cerr := snapCPU(im.p.pid)
			var calls map[string]int
			if tr != nil {
				var terr error
				if calls, terr = tr.detach(); err == nil {
					err = terr
				}
			}
			if err == nil {
				err = cerr
			}
			if err != nil {
				return result{}, 0, nil, err
			}
			r, err := parseResult(l)
			if err != nil {
				return r, 0, nil, err
			}
			seen := r
			if o.side == "client" {
				// The C server saw each handshake: it judges suites,
				// groups and resumption, and must agree on the count.
				sl, err := server.ask("stats", 10*time.Second)
				if err != nil {
					return r, 0, nil, err
				}
				if seen, err = parseResult(sl); err != nil {
					return r, 0, nil, err
				}
				if seen.n != r.n || seen.resumed != r.resumed {
					return r, 0, nil, fmt.Errorf("%s, %s: the client counted %d handshakes (%d resumed), the C server %d (%d)",
						m.label(), im.name, r.n, r.resumed, seen.n, seen.resumed)
				}
			}
			if err := check(m, seen); err != nil {
				return r, 0, nil, fmt.Errorf("%s, %s: %w", m.label(), im.name, err)
			}
			if o.side == "client" && len(r.suites)+len(r.groups) > 0 {
				// A client that tallies (the C client and the Go+C
				// floors) must have seen the same.
				if err := check(m, r); err != nil {
					return r, 0, nil, fmt.Errorf("%s, %s, as the client saw it: %w", m.label(), im.name, err)
				}
			}
			return r, cpuSince(c0, c1), calls, nil
		}
		for round := 0; round < o.rounds; round++ {
			for _, m := range modes {
				for _, im := range impls {
					if im.skip[m.how] != "" {
						continue
					}
					r, cpu, _, err := one(im, m, 0, "")
					if err != nil {
						stopAll()
						return err
					}
					f := rows[m][im.name]
					f.cpu = append(f.cpu, float64(cpu.Nanoseconds())/1e3/float64(r.n))
					f.rate = append(f.rate, float64(r.n)/(float64(r.ns)/1e9))
				}
			}
		}
		if o.strace > 0 {
			for _, m := range modes {
				for _, im := range impls {
					if im.skip[m.how] != "" {
						continue
					}
					r, _, calls, err := one(im, m, o.strace, filepath.Join(dir, "strace.out"))
					if err != nil {
						stopAll()
						return fmt.Errorf("strace round: %w", err)
					}
					f := rows[m][im.name]
					f.calls, f.traced = calls, r.n
				}
			}
		}
		for _, m := range modes {
			for _, im := range impls {
				rows[m][im.name].threads = threads(im.p.pid)
			}
		}
		stopAll()
	}
	report(w, o, names, order, rows, nginx, measured >= 0)
	if o.side == "server" && o.idle > 0 {
		return idle(w, o, idleSetup{
			dir: dir, certFile: certFile, keyFile: keyFile, self: self,
			version: versions[len(versions)-1], cpu: measured, only: only, nginx: nginx,
		})
	}
	return nil
}

// roleSpec is the environment that makes this binary play role r on
// protocol version v (12 or 13).
func roleSpec(r, v, certFile, keyFile string) []string {
	return []string{fmt.Sprintf("%s=%s %s %s %s", roleEnv, r, v, certFile, keyFile)}
}

// startServer starts a server under test (pinned to cpu unless cpu < 0)
// and reads the port it listens on.
func startServer(name string, cpu int, env []string, args ...string) (*proc, int, error) {
	p, err := start(name, cpu, env, args...)
	if err != nil {
		return nil, 0, err
	}
	port, err := p.serverPort()
	if err != nil {
		p.stop()
		return nil, 0, err
	}
	return p, port, nil
}

// check verifies one round as the C peer saw it: no failure, every
// handshake resumed or none did as the mode says, with the pinned suite
// and group.
func check(m mode, r result) error {
	if r.failed != 0 {
		return fmt.Errorf("%d failed handshakes", r.failed)
	}
	if r.n == 0 {
		return fmt.Errorf("no handshake in the round")
	}
	want := r.n
	if m.how == "full" {
		want = 0
	}
	if r.resumed != want {
		return fmt.Errorf("%d of %d handshakes resumed, want %d", r.resumed, r.n, want)
	}
	suite, group := m.expect()
	if r.suites[suite] != r.n || len(r.suites) != 1 {
		return fmt.Errorf("suites %v, want %s on all %d", r.suites, suite, r.n)
	}
	if r.groups[group] != r.n || len(r.groups) != 1 {
		return fmt.Errorf("groups %v, want %s on all %d", r.groups, group, r.n)
	}
	return nil
}

func writeCert(dir string) (certFile, keyFile string, err error) {
	cert, err := loopback.SelfSigned()
	if err != nil {
		return "", "", err
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, cert.CertPEM, 0o600); err != nil {
		return "", "", err
	}
	return certFile, keyFile, os.WriteFile(keyFile, cert.KeyPEM, 0o600)
}

// report prints the tables: CPU per handshake, handshakes per second,
// system calls per connection, with ratios to the C program.
func report(w io.Writer, o options, names []string, order []mode, rows map[mode]map[string]*figures, nginx *nginxInfo, pinned bool) {
	what, peer := "server", "the C client, one connection at a time"
	if o.side == "client" {
		what, peer = "client", "the C server"
	}
	fmt.Fprintf(w, "make bench-%s: OpenSSL %s (the library and the C programs), %s, %d CPUs\n",
		what, sslsession.RuntimeVersionText(), runtime.Version(), runtime.NumCPU())
	if pinned {
		fmt.Fprintf(w, "the %s measured on CPU 0, its peer (%s) on CPU 1; ", what, peer)
	} else {
		fmt.Fprintf(w, "one CPU: nothing pinned, the %s and its peer (%s) share it; ", what, peer)
	}
	fmt.Fprintf(w, "%d interleaved rounds of %s, medians; %s / %s and %s on every handshake, checked by the C peer\n",
		o.rounds, o.per, cfloor.TLS12Cipher, cfloor.TLS13Suite, mode{"13", "full"}.expectGroup())
	if nginx != nil {
		fmt.Fprintf(w, "%s\n", nginx.describe())
	}
	table := func(title string, value func(*figures) float64, format, rel string, ratioOf func(a, b float64) string) {
		fmt.Fprintf(w, "\n%s\n\n| mode |", title)
		for _, n := range names {
			fmt.Fprintf(w, " %s |", n)
		}
		for _, n := range names {
			if n != cName {
				fmt.Fprintf(w, " %s %s C |", n, rel)
			}
		}
		fmt.Fprint(w, "\n| --- |")
		for range names {
			fmt.Fprint(w, " ---: |")
		}
		for _, n := range names {
			if n != cName {
				fmt.Fprint(w, " ---: |")
			}
		}
		fmt.Fprintln(w)
		for _, m := range order {
			fmt.Fprintf(w, "| %s |", m.label())
			c := value(rows[m][cName])
			for _, n := range names {
				if v := value(rows[m][n]); v > 0 {
					fmt.Fprintf(w, " "+format+" |", v)
				} else {
					fmt.Fprint(w, " – |")
				}
			}
			for _, n := range names {
				if n != cName {
					fmt.Fprintf(w, " %s |", ratioOf(value(rows[m][n]), c))
				}
			}
			fmt.Fprintln(w)
		}
	}
	table(fmt.Sprintf("CPU µs per handshake, the %s process's user + system time (lower is better)", what),
		func(f *figures) float64 { return cfloor.Median(f.cpu) }, "%.0f", "÷", cfloor.Ratio)
	table("Handshakes per second", func(f *figures) float64 { return cfloor.Median(f.rate) }, "%.0f", "÷", cfloor.Ratio)
	if o.strace == 0 {
		return
	}
	perConn := func(f *figures) float64 {
		if f.traced == 0 {
			return 0
		}
		total := 0
		for _, n := range f.calls {
			total += n
		}
		return float64(total) / float64(f.traced)
	}
	table(fmt.Sprintf("System calls per connection (strace -c -f on the %s, one round of %d)", what, o.strace),
		perConn, "%.1f", "−", func(a, b float64) string {
			if a == 0 || b == 0 {
				return "–"
			}
			return fmt.Sprintf("%+.1f", a-b)
		})
	fmt.Fprintf(w, "\nWhich calls, per connection (≥ 0.5), and the process's threads\n\n")
	for _, m := range order {
		for _, n := range names {
			f := rows[m][n]
			if f.traced == 0 {
				continue
			}
			type kv struct {
				name string
				per  float64
			}
			var kvs []kv
			for name, c := range f.calls {
				if p := float64(c) / float64(f.traced); p >= 0.5 {
					kvs = append(kvs, kv{name, p})
				}
			}
			sort.Slice(kvs, func(i, j int) bool {
				if kvs[i].per != kvs[j].per {
					return kvs[i].per > kvs[j].per
				}
				return kvs[i].name < kvs[j].name
			})
			var parts []string
			for _, e := range kvs {
				parts = append(parts, fmt.Sprintf("%s %.1f", e.name, e.per))
			}
			fmt.Fprintf(w, "- %s, %s (%d threads): %s\n", m.label(), n, f.threads, strings.Join(parts, ", "))
		}
	}
}

// expectGroup is the group of a key exchange in m.
func (m mode) expectGroup() string {
	_, g := mode{m.version, "full"}.expect()
	return g
}

// nginxInfo is the nginx found on the machine and what it says of itself.
type nginxInfo struct {
	path, version string
}

func findNginx() (*nginxInfo, error) {
	path, err := exec.LookPath("nginx")
	if err != nil {
		for _, p := range []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx"} {
			if _, serr := os.Stat(p); serr == nil {
				path, err = p, nil
				break
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("nginx not found (make bench-server installs it): %w", err)
	}
	out, err := exec.Command(path, "-V").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("nginx -V: %w", err)
	}
	var keep []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "nginx version") || strings.Contains(l, "OpenSSL") {
			keep = append(keep, strings.TrimSpace(l))
		}
	}
	return &nginxInfo{path: path, version: strings.Join(keep, "; ")}, nil
}

func (n *nginxInfo) describe() string {
	return "nginx: one worker, its own OpenSSL (not OPENSSL_PREFIX's): " + n.version
}

// start runs nginx with one worker (of workerConnections connections) and
// a configuration of the benchmark's on a free port, and measures the
// worker.
func (n *nginxInfo) start(dir, v, certFile, keyFile string, cpu, workerConnections int) (*proc, int, error) {
	port, err := freePort()
	if err != nil {
		return nil, 0, err
	}
	proto, curve := "TLSv1.2", "X25519"
	if v == "13" {
		proto = "TLSv1.3"
	}
	if !hasX25519() {
		curve = "prime256v1"
	}
	nd := filepath.Join(dir, "nginx-"+v)
	if err := os.MkdirAll(nd, 0o700); err != nil {
		return nil, 0, err
	}
	conf := loopback.NginxConf(nd, "warn", workerConnections, fmt.Sprintf(`  server {
    listen 127.0.0.1:%[2]d ssl;
    ssl_certificate %[3]s;
    ssl_certificate_key %[4]s;
    ssl_protocols %[5]s;
    ssl_ciphers %[6]s;
    ssl_conf_command Ciphersuites %[7]s;
    ssl_ecdh_curve %[8]s;
    ssl_session_cache builtin:20480;
    ssl_session_tickets on;
    return 204;
  }
`, nd, port, certFile, keyFile, proto, cfloor.TLS12Cipher, cfloor.TLS13Suite, curve))
	cf := filepath.Join(nd, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		return nil, 0, err
	}
	p, err := start("nginx", cpu, nil, n.path, "-p", nd, "-e", filepath.Join(nd, "error.log"), "-c", cf)
	if err != nil {
		return nil, 0, err
	}
	p.quit = syscall.SIGQUIT
	if err := waitListening(port, 10*time.Second); err != nil {
		p.stop()
		log, _ := os.ReadFile(filepath.Join(nd, "error.log"))
		return nil, 0, fmt.Errorf("%w: %s %s", err, p.stderr.String(), log)
	}
	if p.pid, err = childOf(p.cmd.Process.Pid, 10*time.Second); err != nil {
		p.stop()
		return nil, 0, err
	}
	return p, port, nil
}
