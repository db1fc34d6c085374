package main

import (
	"bufio"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sslsession/sslsession/internal/loopback"
)

//go:embed csrc/benchc.c
var benchcSource []byte

// buildC compiles the C server and client (csrc/benchc.c) into dir with
// the C compiler cgo uses, against the OpenSSL pkg-config finds, with
// CGO_LDFLAGS (which carry make's run path under OPENSSL_PREFIX).
func buildC(dir string) (string, error) {
	src := filepath.Join(dir, "benchc.c")
	if err := os.WriteFile(src, benchcSource, 0o600); err != nil {
		return "", err
	}
	pc, err := exec.Command("pkg-config", "--cflags", "--libs", "libssl", "libcrypto").Output()
	if err != nil {
		return "", fmt.Errorf("pkg-config libssl: %w", err)
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	bin := filepath.Join(dir, "benchc")
	args := append([]string{"-O2", "-Wno-deprecated-declarations", "-o", bin, src}, strings.Fields(string(pc))...)
	args = append(args, strings.Fields(os.Getenv("CGO_LDFLAGS"))...)
	if out, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		return "", fmt.Errorf("building the C programs: %w\n%s", err, out)
	}
	return bin, nil
}

// proc is one process of the benchmark, spoken to by lines on its
// standard input and output.
type proc struct {
	name   string
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Scanner
	stderr *strings.Builder
	// pid is the process measured: the same as cmd's, except for nginx
	// (its one worker).
	pid int
	// quit, when set, is the signal that ends the process (nginx does not
	// read its input).
	quit os.Signal
}

// cpuArgs prefixes args with taskset to pin the process to cpu, or
// leaves them as they are when cpu < 0.
func cpuArgs(cpu int, args []string) []string {
	if cpu < 0 {
		return args
	}
	return append([]string{"taskset", "-c", strconv.Itoa(cpu)}, args...)
}

// start runs args (pinned to cpu unless cpu < 0) with env added.
func start(name string, cpu int, env []string, args ...string) (*proc, error) {
	args = cpuArgs(cpu, args)
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), env...)
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	p := &proc{name: name, cmd: cmd, in: in, out: bufio.NewScanner(out), stderr: &strings.Builder{}}
	cmd.Stderr = limitWriter{p.stderr, 4096}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	p.pid = cmd.Process.Pid
	return p, nil
}

// limitWriter keeps the first n bytes of what a process says on stderr.
type limitWriter struct {
	b *strings.Builder
	n int
}

func (w limitWriter) Write(p []byte) (int, error) {
	if room := w.n - w.b.Len(); room > 0 {
		w.b.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// line reads the process's next line, failing on "error ..." replies.
func (p *proc) line(timeout time.Duration) (string, error) {
	got := make(chan bool, 1)
	go func() { got <- p.out.Scan() }()
	select {
	case ok := <-got:
		if !ok {
			return "", fmt.Errorf("%s ended: %s", p.name, strings.TrimSpace(p.stderr.String()))
		}
	case <-time.After(timeout):
		// The reading goroutine ends when the process is stopped.
		return "", fmt.Errorf("%s: no answer in %s", p.name, timeout)
	}
	l := p.out.Text()
	if strings.HasPrefix(l, "error") {
		return "", fmt.Errorf("%s: %s", p.name, l)
	}
	return l, nil
}

// ask sends one command and reads its answer.
func (p *proc) ask(cmd string, timeout time.Duration) (string, error) {
	if _, err := fmt.Fprintln(p.in, cmd); err != nil {
		return "", fmt.Errorf("%s: %w", p.name, err)
	}
	return p.line(timeout)
}

// stop closes the process's input (its signal to end) and waits a moment
// before killing it.
func (p *proc) stop() {
	p.in.Close()
	if p.quit != nil {
		_ = p.cmd.Process.Signal(p.quit)
	}
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		if p.pid != p.cmd.Process.Pid {
			// nginx's worker first, while its master (not yet waited
			// for) keeps its number from being reused.
			_ = syscall.Kill(p.pid, syscall.SIGKILL)
		}
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// serverPort reads the "port N" line a server prints when it listens.
func (p *proc) serverPort() (int, error) {
	l, err := p.line(10 * time.Second)
	if err != nil {
		return 0, err
	}
	var port int
	if _, err := fmt.Sscanf(l, "port %d", &port); err != nil {
		return 0, fmt.Errorf("%s: %q instead of its port", p.name, l)
	}
	return port, nil
}

// result is one answer of a client: "ok n=.. resumed=.. ns=.. suites=..".
type result struct {
	n, resumed, failed int
	ns                 int64
	suites, groups     map[string]int
}

func parseResult(l string) (result, error) {
	r := result{suites: map[string]int{}, groups: map[string]int{}}
	f := strings.Fields(l)
	if len(f) == 0 || f[0] != "ok" {
		return r, fmt.Errorf("unexpected answer %q", l)
	}
	for _, kv := range f[1:] {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return r, fmt.Errorf("unexpected field %q in %q", kv, l)
		}
		var err error
		switch k {
		case "n":
			r.n, err = strconv.Atoi(v)
		case "resumed":
			r.resumed, err = strconv.Atoi(v)
		case "failed":
			r.failed, err = strconv.Atoi(v)
		case "ns":
			r.ns, err = strconv.ParseInt(v, 10, 64)
		case "suites", "groups":
			m := r.suites
			if k == "groups" {
				m = r.groups
			}
			if v == "-" {
				continue
			}
			for _, nc := range strings.Split(v, ",") {
				name, count, ok := strings.Cut(nc, ":")
				c, cerr := strconv.Atoi(count)
				if !ok || cerr != nil {
					return r, fmt.Errorf("unexpected tally %q in %q", nc, l)
				}
				m[name] += c
			}
		}
		if err != nil {
			return r, fmt.Errorf("field %q in %q: %w", kv, l, err)
		}
	}
	return r, nil
}

// clockTick is USER_HZ, the unit of /proc/PID/stat's times: 100 on Linux.
const clockTick = 10 * time.Millisecond

// cpuSnap is a process's CPU time at one moment, two ways: user + system
// time of all its threads, dead ones included, from /proc/PID/stat (in
// clock ticks), and the nanoseconds each live thread has run
// (/proc/PID/task/TID/schedstat), precise but blind to threads that end.
type cpuSnap struct {
	ticks   time.Duration
	threads map[string]time.Duration
}

func snapCPU(pid int) (cpuSnap, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return cpuSnap{}, err
	}
	s := cpuSnap{threads: map[string]time.Duration{}}
	if s.ticks, err = parseStat(string(b)); err != nil {
		return s, err
	}
	dir := fmt.Sprintf("/proc/%d/task", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return s, err
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name(), "schedstat"))
		if err != nil {
			continue // the thread ended meanwhile
		}
		f := strings.Fields(string(b))
		if len(f) == 0 {
			continue
		}
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return s, fmt.Errorf("%s/%s/schedstat: %q", dir, e.Name(), b)
		}
		s.threads[e.Name()] = time.Duration(ns)
	}
	return s, nil
}

// cpuSince is the CPU time the process used since s0: from the threads'
// nanoseconds when every thread of s0 is still there, else from the
// coarser ticks, which count ended threads too.
func cpuSince(s0, s1 cpuSnap) time.Duration {
	var d time.Duration
	for tid, t1 := range s1.threads {
		d += t1 - s0.threads[tid]
	}
	for tid := range s0.threads {
		if _, ok := s1.threads[tid]; !ok {
			return s1.ticks - s0.ticks
		}
	}
	return d
}

func parseStat(s string) (time.Duration, error) {
	// The command name, in parentheses, may hold spaces: fields are
	// counted after its closing parenthesis (field 3 onwards).
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, errors.New("/proc stat: no command name")
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, errors.New("/proc stat: too few fields")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, errors.New("/proc stat: utime or stime not a number")
	}
	return time.Duration(u+st) * clockTick, nil
}

// threads counts the process's threads now.
func threads(pid int) int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	return len(ents)
}

// childOf finds the child of parent (nginx's worker), waiting for it.
func childOf(parent int, timeout time.Duration) (int, error) {
	for stop := time.Now().Add(timeout); time.Now().Before(stop); time.Sleep(20 * time.Millisecond) {
		ents, err := os.ReadDir("/proc")
		if err != nil {
			return 0, err
		}
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
			if err != nil {
				continue
			}
			s := string(b)
			i := strings.LastIndexByte(s, ')')
			if i < 0 {
				continue
			}
			f := strings.Fields(s[i+1:])
			if len(f) > 1 && f[1] == strconv.Itoa(parent) {
				return pid, nil
			}
		}
	}
	return 0, fmt.Errorf("no child of process %d in %s", parent, timeout)
}

// freePort finds a free port on 127.0.0.1 for a server that wants one
// named (nginx).
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// waitListening waits until something accepts connections on port.
func waitListening(port int, timeout time.Duration) error {
	return loopback.WaitListening(net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), timeout, nil)
}

// tracer is strace -c -f attached to every thread of a process.
type tracer struct {
	cmd  *exec.Cmd
	out  string
	done chan error
}

// attach starts strace on pid and returns once it has attached to its
// threads.
func attach(pid int, out string) (*tracer, error) {
	// With -f, strace attaches to every thread of the process and says
	// "Process PID attached" (with N threads) once.
	cmd := exec.Command("strace", "-c", "-f", "-o", out, "-p", strconv.Itoa(pid))
	errs, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("strace: %w", err)
	}
	t := &tracer{cmd: cmd, out: out, done: make(chan error, 1)}
	attached := make(chan struct{})
	var said strings.Builder
	go func() {
		sc := bufio.NewScanner(errs)
		first := true
		for sc.Scan() {
			if strings.Contains(sc.Text(), "attached") {
				if first {
					close(attached)
					first = false
				}
			} else if said.Len() < 2048 {
				said.WriteString(sc.Text() + "\n")
			}
		}
		t.done <- cmd.Wait()
	}()
	select {
	case <-attached:
		return t, nil
	case err := <-t.done:
		return nil, fmt.Errorf("strace -p %d ended: %v: %s", pid, err, said.String())
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-t.done
		return nil, fmt.Errorf("strace -p %d: not attached after 10s", pid)
	}
}

// detach stops strace and returns its count of each system call.
func (t *tracer) detach() (map[string]int, error) {
	_ = t.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-t.done:
	case <-time.After(10 * time.Second):
		_ = t.cmd.Process.Kill()
		<-t.done
	}
	b, err := os.ReadFile(t.out)
	if err != nil {
		return nil, err
	}
	return parseStraceSummary(string(b))
}

// parseStraceSummary reads strace -c's table: "% time seconds usecs/call
// calls errors syscall", the errors column empty where there were none.
func parseStraceSummary(s string) (map[string]int, error) {
	calls := map[string]int{}
	total := false
	for _, l := range strings.Split(s, "\n") {
		f := strings.Fields(l)
		if len(f) < 5 || strings.HasPrefix(l, "%") || strings.HasPrefix(l, "-") {
			continue
		}
		if _, err := strconv.ParseFloat(f[0], 64); err != nil {
			continue
		}
		n, err := strconv.Atoi(f[3])
		if err != nil {
			return nil, fmt.Errorf("strace summary: %q", l)
		}
		name := f[len(f)-1]
		if name == "total" {
			total = true
			continue
		}
		calls[name] = n
	}
	if !total {
		return nil, fmt.Errorf("strace summary without a total: %q", s)
	}
	return calls, nil
}
