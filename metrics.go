package sslsession

import (
	"expvar"
	"fmt"
	"sync"
	"weak"

	"github.com/spacemonkeygo/openssl"
)

// Metrics is what a context's session caching is doing: OpenSSL's cache
// counters, the store bridge's and the ticket keys'.
type Metrics struct {
	Cache    Stats      `json:"cache"`     // SSL_CTX_sess_*(3)
	Store    StoreStats `json:"store"`     // the SessionStore bridge; zero without a store
	HasStore bool       `json:"has_store"` // whether a store is installed
	// Tickets are the ticket-key counters (SetTicketKeys); zero without.
	Tickets TicketStats `json:"tickets"`
	// EarlyData counts TLS 1.3 early data (earlydata.go); zero without.
	EarlyData EarlyDataStats `json:"early_data"`
}

// Metrics reads the cache and store counters.
func (c *Ctx) Metrics() Metrics {
	if c.nilCtx() {
		return Metrics{}
	}
	return Metrics{Cache: c.cacheStats(), Store: c.storeStats(), HasStore: c.Store() != nil, Tickets: c.ticketStats(), EarlyData: c.earlyStats()}
}

var (
	expvarMu  sync.Mutex
	expvarCtx = map[string]*expvarTarget{} // names this package published
)

type expvarTarget struct {
	mu sync.Mutex
	oc weak.Pointer[openssl.Ctx]
}

func (t *expvarTarget) value() any {
	t.mu.Lock()
	oc := t.oc.Value()
	t.mu.Unlock()
	if oc == nil {
		return nil
	}
	c, err := NewCtx(oc)
	if err != nil {
		return nil
	}
	return c.Metrics()
}

// PublishExpvar publishes c's Metrics as the expvar variable name (in
// /debug/vars, as JSON). Publishing the same name again points it at the new
// context instead of panicking as expvar.Publish does; a name published by
// other code is an error. The variable holds the spacemonkeygo context
// weakly: it does not keep the context alive, and shows null once the
// context is gone.
func PublishExpvar(name string, c *Ctx) error {
	if c.nilCtx() || c.oc == nil {
		return errNilCtx
	}
	expvarMu.Lock()
	defer expvarMu.Unlock()
	if t, ok := expvarCtx[name]; ok {
		t.mu.Lock()
		t.oc = weak.Make(c.oc)
		t.mu.Unlock()
		return nil
	}
	if expvar.Get(name) != nil {
		return fmt.Errorf("sslsession: expvar %q is already published by other code", name)
	}
	t := &expvarTarget{oc: weak.Make(c.oc)}
	expvar.Publish(name, expvar.Func(t.value))
	expvarCtx[name] = t
	return nil
}
