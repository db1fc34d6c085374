package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/sslsession/sslsession"
)

// protocols are the versions the linked OpenSSL speaks, as the flags and
// s_server name them.
func protocols() []struct{ flag, sserver, name string } {
	ps := []struct{ flag, sserver, name string }{{"--tls1.2", "-tls1_2", "TLSv1.2"}}
	if sslsession.MaxSupportedVersion() >= sslsession.TLS13 {
		ps = append(ps, struct{ flag, sserver, name string }{"--tls1.3", "-tls1_3", "TLSv1.3"})
	}
	return ps
}

// sessIDText runs `openssl sess_id -text -noout` on a session file.
func sessIDText(t *testing.T, path string, der bool) string {
	t.Helper()
	args := []string{"sess_id", "-in", path, "-noout", "-text"}
	if der {
		args = append(args, "-inform", "DER")
	}
	out, err := exec.Command(opensslBin(t), args...).CombinedOutput()
	require.NoError(t, err, "openssl sess_id: %s", out)
	return string(out)
}

func field(t *testing.T, text, re string) string {
	t.Helper()
	m := regexp.MustCompile(re).FindStringSubmatch(text)
	require.NotNil(t, m, "no %s in:\n%s", re, text)
	return m[1]
}

// sClientSession runs `openssl s_client -sess_out` against addr and waits
// for it to write the session file.
func sClientSession(t *testing.T, addr, file string, extra ...string) {
	t.Helper()
	args := append([]string{"s_client", "-connect", addr, "-sess_out", file}, extra...)
	cmd := exec.Command(opensslBin(t), args...)
	stdin, err := cmd.StdinPipe() // kept open: s_client stays connected
	require.NoError(t, err)
	var logs bytes.Buffer
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	defer func() {
		_ = stdin.Close()
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	}()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if data, err := os.ReadFile(file); err == nil && bytes.Contains(data, []byte("-----END SSL SESSION PARAMETERS-----")) {
			// TLS 1.3: s_client rewrites the file for each ticket; let the
			// second one land.
			time.Sleep(200 * time.Millisecond)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("s_client wrote no session:\n%s", logs.String())
}

func parseResume(t *testing.T, out string) resumeReport {
	t.Helper()
	var rep resumeReport
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	require.NoError(t, dec.Decode(&rep), "resume --json output: %s", out)
	return rep
}
