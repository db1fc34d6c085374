package main

import (
	"context"
	"log"
	"os/exec"
	"strings"
	"time"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/keyfile"
)

// keyFileHook keeps nginx's and haproxy's ticket-key files in step with
// the ring (a mixed fleet on one name) and runs reload after a change; nil
// when there is nothing to write.
func keyFileHook(nginx, haproxy, reload string) func(time.Time, []sslsession.TicketRingKey) {
	var hooks []func(time.Time, []sslsession.TicketRingKey)
	onError := func(err error) { log.Printf("ticket key files: %v", err) }
	onChange := func() {
		words := strings.Fields(reload)
		if len(words) == 0 {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if out, err := exec.CommandContext(ctx, words[0], words[1:]...).CombinedOutput(); err != nil {
			log.Printf("ticket key files: %s: %v: %s", reload, err, out)
		}
	}
	if nginx != "" {
		f := &keyfile.NginxFiles{Paths: strings.Split(nginx, ",")}
		hooks = append(hooks, f.Hook(onChange, onError))
	}
	if haproxy != "" {
		f := &keyfile.HAProxyFile{Path: haproxy}
		hooks = append(hooks, f.Hook(onChange, onError))
	}
	if len(hooks) == 0 {
		return nil
	}
	return func(now time.Time, keys []sslsession.TicketRingKey) {
		for _, h := range hooks {
			h(now, keys)
		}
	}
}
