package keyfile_test

import (
	"fmt"
	"log"
	"os"
	"path/filepath"
	"time"

	"github.com/sslsession/sslsession"
	"github.com/sslsession/sslsession/keyfile"
)

// An nginx server block lists three ssl_session_ticket_key files; the ring
// writes them on every change and nginx is reloaded when they changed.
func ExampleNginxFiles() {
	dir, err := os.MkdirTemp("", "nginx-keys")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	files := &keyfile.NginxFiles{Paths: []string{
		filepath.Join(dir, "ticket.0.key"), // encrypts
		filepath.Join(dir, "ticket.1.key"),
		filepath.Join(dir, "ticket.2.key"),
	}}
	// ticketring calls a hook of this signature on every change.
	hook := files.Hook(func() { fmt.Println("reload nginx") }, func(err error) { log.Print(err) })

	cur, _ := sslsession.NewTicketKey()
	next, _ := sslsession.NewTicketKey()
	now := time.Now()
	ring := []sslsession.TicketRingKey{
		{Key: cur, Encrypt: true, Start: now.Add(-time.Hour)},
		{Key: next, Encrypt: true, Start: now.Add(time.Hour)},
	}
	hook(now, ring)
	hook(now, ring) // unchanged: no reload
	keys, err := keyfile.ReadNginx(files.Paths...)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(keys[0].Equal(cur), keys[1].Equal(next))
	// Output:
	// reload nginx
	// true true
}

// haproxy's tls-ticket-keys file: the key before the last encrypts.
func ExampleHAProxyFile() {
	dir, err := os.MkdirTemp("", "haproxy-keys")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	f := &keyfile.HAProxyFile{Path: filepath.Join(dir, "tickets.keys")}
	prev, _ := sslsession.NewTicketKey()
	cur, _ := sslsession.NewTicketKey()
	next, _ := sslsession.NewTicketKey()
	now := time.Now()
	changed, err := f.Publish(now, []sslsession.TicketRingKey{
		{Key: prev, Encrypt: true, Start: now.Add(-2 * time.Hour)},
		{Key: cur, Encrypt: true, Start: now.Add(-time.Hour)},
		{Key: next, Encrypt: true, Start: now.Add(time.Hour)},
	})
	if err != nil {
		log.Fatal(err)
	}
	keys, err := keyfile.ReadHAProxy(f.Path)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(changed, len(keys), keys[keyfile.HAProxyEncrypting(keys)].Equal(cur))
	// At the next rotation, push the new next key over haproxy's stats
	// socket instead of reloading: set ssl tls-key <file> <line>.
	line, _ := keyfile.HAProxyLine(next)
	fmt.Println(len(line))
	// Output:
	// true 3 true
	// 108
}
